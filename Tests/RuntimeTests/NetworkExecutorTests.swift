import CNI
import Foundation
import PierTestSupport
import Testing

@testable import Runtime

/// libcni's ordering, injection and cache rules, checked with shell-script plugins that log what they
/// were given. No namespaces involved: these run without root.
struct NetworkExecutorTests {
    /// A scratch directory with fake plugins `a` and `b` and a log of their invocations.
    final class Fixture {
        let directory = NSTemporaryDirectory() + "pier-exec-\(uniqueTag())"
        var log: String { directory + "/log" }
        var bin: String { directory + "/bin" }
        var cache: String { directory + "/cache" }

        init() throws {
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            // Each plugin logs "<name> <verb> <stdin>" and, on ADD, adds an interface named after itself to
            // the previous result (or starts one).
            for name in ["a", "b"] {
                let script = """
                    #!/bin/sh
                    input=$(cat)
                    printf '%s %s %s\\n' \(name) "$CNI_COMMAND" "$input" >> "$PIER_TEST_LOG"
                    if [ "$CNI_COMMAND" = ADD ]; then
                      printf '{"cniVersion":"1.1.0","interfaces":[{"name":"\(name)"}],"ips":[{"address":"10.9.0.\(name == "a" ? 1 : 2)/24"}]}'
                    fi
                    if [ "$CNI_COMMAND" = VERSION ]; then printf '{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}'; fi
                    exit 0
                    """
                let path = bin + "/" + name
                try script.write(toFile: path, atomically: true, encoding: .utf8)
                chmod(path, 0o755)
            }
        }

        func executor() -> NetworkExecutor {
            var environment = ProcessInfo.processInfo.environment
            environment["PIER_TEST_LOG"] = log
            return NetworkExecutor(
                pluginPath: [directory + "/empty", bin], cache: ResultCache(cacheDirectory: cache),
                environment: environment)
        }

        /// Logged invocations as (plugin, verb, stdin JSON).
        func calls() throws -> [(String, String, [String: Any])] {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return try text.split(separator: "\n").map { line in
                let parts = line.split(separator: " ", maxSplits: 2)
                let json = try JSONSerialization.jsonObject(with: Data(parts[2].utf8)) as? [String: Any] ?? [:]
                return (String(parts[0]), String(parts[1]), json)
            }
        }

        func clearLog() { try? FileManager.default.removeItem(atPath: log) }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    static func list(_ extra: String = "") throws -> NetworkConfigList {
        let text = """
            {"cniVersion":"1.1.0","name":"net1"\(extra),"plugins":[{"type":"a","keep":1},
            {"type":"b","capabilities":{"portMappings":true}}]}
            """
        return try NetworkConfigList(bytes: Array(text.utf8))
    }

    static let request = AttachmentRequest(
        containerID: "c1", netns: "/run/netns/x", ifName: "eth0", cniArgs: [("K", "V")],
        capabilityArgs: ["portMappings": .array([.object(["hostPort": .integer(80)])]), "mac": .string("x")])

    @Test func addChainsResultsInjectsCapabilitiesAndCaches() throws {
        let fixture = try Fixture()
        let list = try Self.list()
        let result = try fixture.executor().add(list, Self.request)
        #expect(result.interfaces.map(\.name) == ["b"])

        let calls = try fixture.calls()
        #expect(calls.map { "\($0.0) \($0.1)" } == ["a ADD", "b ADD"])
        #expect(calls[0].2["prevResult"] == nil)
        #expect(calls[0].2["runtimeConfig"] == nil, "a asked for no capability")
        #expect(calls[0].2["keep"] as? Int == 1, "unknown keys pass through")
        #expect(calls[0].2["name"] as? String == "net1")
        let previous = calls[1].2["prevResult"] as? [String: Any]
        #expect((previous?["interfaces"] as? [[String: Any]])?.first?["name"] as? String == "a")
        let runtimeConfig = calls[1].2["runtimeConfig"] as? [String: Any]
        #expect(runtimeConfig?.keys.sorted() == ["portMappings"])

        let path = fixture.cache + "/results/net1-c1-eth0"
        let cached = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        #expect(cached["kind"] as? String == "cniCacheV1")
        #expect(cached["containerId"] as? String == "c1")
        #expect(cached["ifName"] as? String == "eth0")
        #expect(cached["networkName"] as? String == "net1")
        #expect(cached["netns"] as? String == "/run/netns/x")
        #expect(cached["cniArgs"] as? [[String]] == [["K", "V"]])
        #expect((cached["capabilityArgs"] as? [String: Any])?["mac"] as? String == "x")
        let config = try #require((cached["config"] as? String).flatMap { Data(base64Encoded: $0) })
        #expect([UInt8](config) == list.bytes)
        #expect(
            ((cached["result"] as? [String: Any])?["interfaces"] as? [[String: Any]])?.first?["name"] as? String == "b")
        let fileMode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        let directoryMode =
            try FileManager.default.attributesOfItem(atPath: fixture.cache + "/results")[.posixPermissions] as? Int
        #expect(fileMode == 0o600)
        #expect(directoryMode == 0o700)
    }

    @Test func delRunsInReverseWithTheCachedResultAndDropsTheCache() throws {
        let fixture = try Fixture()
        let list = try Self.list()
        let executor = fixture.executor()
        _ = try executor.add(list, Self.request)
        fixture.clearLog()
        try executor.delete(list, Self.request)
        let calls = try fixture.calls()
        #expect(calls.map { "\($0.0) \($0.1)" } == ["b DEL", "a DEL"])
        for call in calls {
            let previous = call.2["prevResult"] as? [String: Any]
            #expect((previous?["interfaces"] as? [[String: Any]])?.first?["name"] as? String == "b")
        }
        #expect(executor.cache.all().isEmpty)
        // Again, with nothing cached: DEL still runs, without prevResult.
        fixture.clearLog()
        try executor.delete(list, Self.request)
        #expect(try fixture.calls().allSatisfy { $0.2["prevResult"] == nil })
    }

    @Test func checkUsesTheCacheAndHonoursDisableCheck() throws {
        let fixture = try Fixture()
        let executor = fixture.executor()
        let list = try Self.list()
        #expect(throws: RuntimeError.self) { try executor.check(list, Self.request) }
        _ = try executor.add(list, Self.request)
        fixture.clearLog()
        try executor.check(list, Self.request)
        #expect(try fixture.calls().map { "\($0.0) \($0.1)" } == ["a CHECK", "b CHECK"])
        fixture.clearLog()
        try executor.check(try Self.list(#","disableCheck":"true""#), Self.request)
        #expect(try fixture.calls().isEmpty)
    }

    @Test func gcDeletesStaleCachedAttachmentsThenSendsGCWithTheValidOnes() throws {
        let fixture = try Fixture()
        let executor = fixture.executor()
        let list = try Self.list()
        var stale = Self.request
        stale.containerID = "gone"
        _ = try executor.add(list, Self.request)
        _ = try executor.add(list, stale)
        fixture.clearLog()
        let errors = executor.garbageCollect(
            list, valid: [.init(network: list.name, containerID: "c1", ifName: "eth0")])
        #expect(errors.isEmpty)
        let calls = try fixture.calls()
        #expect(calls.map { "\($0.0) \($0.1)" } == ["b DEL", "a DEL", "a GC", "b GC"])
        let valid = calls[2].2["cni.dev/valid-attachments"] as? [[String: Any]]
        #expect(valid?.first?["containerID"] as? String == "c1")
        #expect(calls[2].2["cni.dev/attachments"] != nil)
        #expect(executor.cache.all().map(\.request.containerID) == ["c1"])

        fixture.clearLog()
        #expect(executor.garbageCollect(try Self.list(#","disableGC":true"#), valid: []).isEmpty)
        #expect(try fixture.calls().isEmpty)
    }

    @Test func pluginErrorsCarryTheirCodeAndMissingPluginsTheSearchPath() throws {
        let fixture = try Fixture()
        let failing = fixture.bin + "/a"
        try "#!/bin/sh\necho '{\"code\":11,\"msg\":\"try later\"}'\nexit 1\n".write(
            toFile: failing, atomically: true, encoding: .utf8)
        chmod(failing, 0o755)
        let list = try Self.list()
        let failure = error(of: { () throws(RuntimeError) in _ = try fixture.executor().add(list, Self.request) })
        guard case .plugin(_, let plugin, let command, let cniError) = failure else {
            Issue.record("expected a plugin error, got \(String(describing: failure))")
            return
        }
        #expect(plugin == "a" && command == "ADD" && cniError.code.rawValue == 11)
        #expect("\(failure.map { "\($0)" } ?? "")".contains("CNI error 11"))
        let missing = try NetworkConfigList(
            bytes: Array(#"{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"zz"}]}"#.utf8))
        let notFound = error(of: { () throws(RuntimeError) in _ = try fixture.executor().add(missing, Self.request) })
        #expect(notFound.map { "\($0)" }?.contains(fixture.bin) == true)
    }
}

func error(of body: () throws(RuntimeError) -> Void) -> RuntimeError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}
