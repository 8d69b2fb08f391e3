import Foundation
import Testing

@testable import CNI

/// A throwaway directory of shell-script plugins, removed when the test ends.
final class ScriptDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("cni-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func add(_ name: String, _ body: String) throws {
        let file = path + "/" + name
        try Data(("#!/bin/sh\n" + body + "\n").utf8).write(to: URL(fileURLWithPath: file))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file)
    }

    func contents(_ name: String) throws -> String {
        try String(contentsOfFile: path + "/" + name, encoding: .utf8)
    }
}

@Suite struct DelegationTests {
    /// Records stdin and environment per verb, says something on stderr, and answers ADD with a 0.4.0
    /// abbreviated result.
    static let recordingIPAM = #"""
        dir=$(dirname "$0")
        cat > "$dir/stdin.$CNI_COMMAND"
        env > "$dir/env.$CNI_COMMAND"
        echo "ipam: handling $CNI_COMMAND" >&2
        if [ "$CNI_COMMAND" = ADD ]; then
          printf '%s' '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.7/16","gateway":"10.1.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.1"]}}'
        fi
        """#

    func request(
        _ directory: ScriptDirectory, command: String = "ADD", ipamType: String = "recorder", version: String = "1.0.0"
    ) throws -> CNIRequest {
        let environment = try CNIEnvironment([
            "CNI_COMMAND": command, "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
            "CNI_PATH": "/nonexistent:\(directory.path)", "CNI_ARGS": "IgnoreUnknown=1", "PATH": "/usr/bin:/bin",
        ])
        let config = try NetworkConfig(
            bytes: bytes(
                #"{"cniVersion":"\#(version)","name":"net","type":"bridge","ipam":{"type":"\#(ipamType)","subnet":"10.1.0.0/16"}}"#
            ))
        return CNIRequest(environment: environment, config: config)
    }

    @Test func addRunsTheDelegateWithSameStdinAndEnvironment() throws {
        let directory = try ScriptDirectory()
        try directory.add("recorder", DelegationTests.recordingIPAM)
        let request = try request(directory)
        let result = try request.delegateAdd()
        #expect(result.cniVersion == "0.4.0")
        #expect(result.ips == [.init(address: try prefix("10.1.0.7/16"), gateway: try address("10.1.0.1"))])
        #expect(result.routes == [.init(dst: try prefix("0.0.0.0/0"))])
        #expect(result.dns.nameservers == ["10.1.0.1"])
        #expect(try directory.contents("stdin.ADD") == text(request.stdin))
        let environment = try directory.contents("env.ADD").split(separator: "\n").map(String.init)
        #expect(environment.contains("CNI_COMMAND=ADD"))
        #expect(environment.contains("CNI_CONTAINERID=ctr1"))
        #expect(environment.contains("CNI_ARGS=IgnoreUnknown=1"))
        #expect(environment.contains("CNI_PATH=/nonexistent:\(directory.path)"))
    }

    @Test func otherVerbsOverrideOnlyTheCommand() throws {
        let directory = try ScriptDirectory()
        try directory.add("recorder", DelegationTests.recordingIPAM)
        let request = try request(directory, version: "1.1.0")
        try request.delegateDelete()
        try request.delegateCheck()
        try request.delegateGarbageCollect()
        try request.delegateStatus()
        for verb in ["DEL", "CHECK", "GC", "STATUS"] {
            #expect(try directory.contents("env.\(verb)").contains("CNI_COMMAND=\(verb)\n"))
            #expect(try directory.contents("stdin.\(verb)") == text(request.stdin))
        }
    }

    @Test func delegateErrorIsRethrownWithItsCode() throws {
        let directory = try ScriptDirectory()
        try directory.add(
            "failing",
            #"printf '%s' '{"cniVersion":"1.0.0","code":11,"msg":"lease store locked","details":"retry"}'; exit 1"#)
        let request = try request(directory, ipamType: "failing")
        expectCNIError(.tryAgainLater, "lease store locked") { _ = try request.delegateAdd() }
        let error = expectCNIError(.tryAgainLater) { try request.delegateDelete() }
        #expect(error?.details == "retry")
    }

    @Test func delegateFailingWithoutAMessage() throws {
        let directory = try ScriptDirectory()
        try directory.add("silent", "echo 'only on stderr' >&2; exit 3")
        try directory.add("killed", "kill -9 $$")
        expectCNIError(.internalError, "netplugin failed with no error message: exit status 3") {
            _ = try request(directory, ipamType: "silent").delegateAdd()
        }
        expectCNIError(.internalError, "netplugin failed with no error message: signal: 9") {
            _ = try request(directory, ipamType: "killed").delegateAdd()
        }
    }

    @Test func delegatePrintingGarbage() throws {
        let directory = try ScriptDirectory()
        try directory.add("garbage", "echo 'panic: runtime error'; exit 2")
        let error = expectCNIError(.internalError) { _ = try request(directory, ipamType: "garbage").delegateAdd() }
        #expect(error?.msg.contains("error parsing its diagnostic message") == true)
        #expect(error?.msg.contains("panic: runtime error") == true)
    }

    @Test func successfulAddWithUnreadableOutputIsADecodingFailure() throws {
        let directory = try ScriptDirectory()
        try directory.add("empty", "exit 0")
        try directory.add("broken", "echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"x\"}]}'")
        expectCNIError(.decodingFailure) { _ = try request(directory, ipamType: "empty").delegateAdd() }
        expectCNIError(.decodingFailure) { _ = try request(directory, ipamType: "broken").delegateAdd() }
    }

    @Test func resultWithoutVersionTakesTheConfigVersion() throws {
        let directory = try ScriptDirectory()
        try directory.add("noversion", #"printf '%s' '{"ips":[{"address":"10.1.0.8/16"}]}'"#)
        let result = try request(directory, ipamType: "noversion", version: "1.1.0").delegateAdd()
        #expect(result.cniVersion == "1.1.0")
    }

    @Test func typeRules() throws {
        let directory = try ScriptDirectory()
        expectCNIError(.invalidNetworkConfig) { _ = try IPAMDelegate(try request(directory), type: "../x") }
        expectCNIError(.invalidNetworkConfig) { _ = try IPAMDelegate(try request(directory), type: "") }
        let missing = expectCNIError(.internalError) { _ = try request(directory, ipamType: "absent").delegateAdd() }
        #expect(missing?.msg == "failed to find plugin \"absent\" in path [/nonexistent \(directory.path)]")
    }
}

@Suite struct PluginExecTests {
    @Test func findSkipsDirectoriesAndMissingEntries() throws {
        let first = try ScriptDirectory()
        let second = try ScriptDirectory()
        try FileManager.default.createDirectory(atPath: first.path + "/tool", withIntermediateDirectories: false)
        try second.add("tool", "exit 0")
        #expect(try PluginExec.find("tool", in: [first.path, second.path + "/"]) == second.path + "/tool")
        expectCNIError(.internalError, "no paths provided") { _ = try PluginExec.find("tool", in: []) }
        expectCNIError(.invalidNetworkConfig) { _ = try PluginExec.find("a/tool", in: [second.path]) }
    }

    @Test func runPassesExactlyTheGivenEnvironmentAndLargeStdin() throws {
        let directory = try ScriptDirectory()
        try directory.add("echo", "cat; printf '|%s|%s' \"$ONLY_THIS\" \"${CNI_COMMAND:-unset}\"")
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 200_000)
        let output = try PluginExec.run(
            path: directory.path + "/echo", environment: ["ONLY_THIS": "yes", "PATH": "/usr/bin:/bin"], stdin: big)
        // Compared as a Bool: a failure message listing 200 000 bytes takes minutes to build.
        let matches = output == big + bytes("|yes|unset")
        #expect(matches, "stdout was \(output.count) bytes: \(text(Array(output.suffix(20))))")
        let small = try PluginExec.run(
            path: directory.path + "/echo", environment: ["PATH": "/usr/bin:/bin"], stdin: bytes("{}"))
        #expect(text(small) == "{}||unset")
    }

    @Test func spawnReportsExitStatusAndUnexecutableFiles() throws {
        let directory = try ScriptDirectory()
        try directory.add("three", "printf out; exit 3")
        let execution = try PluginExec.spawn(path: directory.path + "/three", environment: [:], stdin: [])
        #expect(execution == PluginExecution(stdout: bytes("out"), exitCode: 3, signal: nil))
        #expect(PluginExec.failure(of: execution).msg.contains("error parsing its diagnostic message"))
        try Data("not a script".utf8).write(to: URL(fileURLWithPath: directory.path + "/plain"))
        let error = expectCNIError(.internalError) {
            _ = try PluginExec.spawn(path: directory.path + "/plain", environment: [:], stdin: [])
        }
        #expect(error?.msg.contains("Permission denied") == true)
    }
}

@Suite struct DelegationLifecycleTests {
    func request(_ directory: ScriptDirectory) throws -> CNIRequest {
        let environment = try CNIEnvironment([
            "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
            "CNI_PATH": directory.path, "PATH": "/usr/bin:/bin",
        ])
        let config = try NetworkConfig(bytes: bytes(#"{"cniVersion":"1.0.0","name":"net","ipam":{"type":"recorder"}}"#))
        return CNIRequest(environment: environment, config: config)
    }

    struct LinkFailed: Error {}

    @Test func failedConfigurationReleasesTheAddress() throws {
        let directory = try ScriptDirectory()
        try directory.add("recorder", DelegationTests.recordingIPAM)
        let delegate = try IPAMDelegate(try request(directory))
        #expect(throws: LinkFailed.self) {
            try delegate.add(undoingOnFailure: { (_: CNIResult) throws -> Int in throw LinkFailed() })
        }
        #expect(try directory.contents("env.DEL").contains("CNI_COMMAND=DEL\n"))
    }

    @Test func successfulConfigurationKeepsTheAddress() throws {
        let directory = try ScriptDirectory()
        try directory.add("recorder", DelegationTests.recordingIPAM)
        let delegate = try IPAMDelegate(try request(directory))
        let count = try delegate.add(undoingOnFailure: { $0.ips.count })
        #expect(count == 1)
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/env.DEL"))
    }
}

@Suite struct PluginVersionQueryTests {
    @Test func readsAVersionAnswer() throws {
        let directory = try ScriptDirectory()
        try directory.add(
            "modern",
            #"[ "$CNI_COMMAND" = VERSION ] && printf '%s' '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}'"#
        )
        let info = try PluginExec.versionInfo(path: directory.path + "/modern", environment: [:])
        #expect(info.supportedVersions == ["0.4.0", "1.0.0", "1.1.0"])
    }

    @Test func aPluginOlderThanVersionMeans010() throws {
        let directory = try ScriptDirectory()
        try directory.add("ancient", #"printf '%s' '{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}'; exit 1"#)
        let info = try PluginExec.versionInfo(path: directory.path + "/ancient", environment: [:])
        #expect(info.supportedVersions == ["0.1.0"])
        try directory.add("broken", #"printf '%s' '{"code":7,"msg":"nope"}'; exit 1"#)
        expectCNIError(.invalidNetworkConfig, "nope") {
            _ = try PluginExec.versionInfo(path: directory.path + "/broken", environment: [:])
        }
    }

    @Test func versionAnswerSurvivesAnUnreadableStdin() {
        let outcome = PluginRunner.run(
            MinimalPlugin(), environment: ["CNI_COMMAND": "VERSION"],
            readStdin: { () throws(CNIError) in throw CNIError(.ioFailure, "EIO") })
        #expect(outcome.exitCode == 0)
        #expect(outcome.stdoutText.hasPrefix(#"{"cniVersion":"1.1.0","supportedVersions":"#))
    }
}

@Suite struct TextBusyRetryTests {
    /// A binary still open for writing cannot be executed (ETXTBSY); once the writer closes it, the
    /// retry succeeds, as it does in libcni while a plugin is being upgraded.
    @Test func retriesWhileTheBinaryIsBeingWritten() throws {
        let directory = try ScriptDirectory()
        try directory.add("busy", "printf done")
        let writer = open(directory.path + "/busy", O_WRONLY)
        try #require(writer >= 0)
        Thread.detachNewThread {
            usleep(300_000)
            close(writer)
        }
        let output = try PluginExec.run(path: directory.path + "/busy", environment: [:], stdin: [])
        #expect(text(output) == "done")
    }
}
