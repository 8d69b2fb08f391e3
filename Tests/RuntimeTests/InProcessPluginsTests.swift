import CNI
import Foundation
import Glibc
import PierTestSupport
import Plugins
import Testing

@testable import Runtime

/// `pier`'s in-process plugins: only a `pier-cni` built from the same sources runs in a forked child,
/// with the same stdout, result and cache entry as an exec, and a crash there is the plugin's failure.
/// Runs the `ipam` plugin alone (no namespaces, no root needed beyond what the lease files need).
struct InProcessPluginsTests {
    final class Scratch {
        let directory = NSTemporaryDirectory() + "pier-inproc-\(uniqueTag())"
        var bin: String { directory + "/bin" }
        var leases: String { directory + "/leases" }
        var cache: String { directory + "/cache" }

        init() throws {
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        }

        /// A shell-script plugin `name` that answers `--source-digest` with `digest` and ADD with a
        /// fixed result, logging each CNI command it ran.
        func foreignPlugin(_ name: String, digest: String) throws -> String {
            let path = bin + "/" + name
            let script = """
                #!/bin/sh
                if [ "$1" = --source-digest ]; then echo \(digest); exit 0; fi
                cat >/dev/null
                echo "$CNI_COMMAND" >> \(directory)/log
                if [ "$CNI_COMMAND" = ADD ]; then printf '{"cniVersion":"1.1.0","ips":[{"address":"10.99.0.9/24"}]}'; fi
                exit 0
                """
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
            return path
        }

        var log: [String] {
            ((try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? "").split(separator: "\n").map(
                String.init)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    static func ipamList(_ leases: String) throws -> NetworkConfigList {
        let text = """
            {"cniVersion":"1.1.0","name":"inproc","plugins":[{"type":"ipam","ipam":{"type":"ipam",
            "dataDir":"\(leases)","ranges":[[{"subnet":"10.98.7.0/24"}]]}}]}
            """
        return try NetworkConfigList(bytes: Array(text.utf8))
    }

    static let request = AttachmentRequest(containerID: "inproc1", netns: "/nonexistent/netns", ifName: "eth0")

    /// The test process runs other threads; the plugin code forked here touches no lock they hold.
    static func executor(_ scratch: Scratch, path: [String], inProcess: Bool) -> NetworkExecutor {
        var executor = NetworkExecutor(
            pluginPath: path, cache: ResultCache(cacheDirectory: scratch.cache), runsOwnPluginsInProcess: false)
        if inProcess { executor.inProcess = InProcessPlugins(cacheDirectory: scratch.cache, allowThreads: true) }
        return executor
    }

    @Test func onlyAPierCNIOfTheSameSourcesIsOwn() throws {
        let scratch = try Scratch()
        let checker = InProcessPlugins(cacheDirectory: scratch.cache)
        #expect(checker.isOwn(builtProductsDirectory + "/ipam"))
        // Another build's pier-cni (same protocol, other sources) and a plugin that is no pier-cni.
        let otherBuild = try scratch.foreignPlugin("bridge", digest: String(repeating: "ab", count: 32))
        let reference = try scratch.foreignPlugin("portmap", digest: "")
        #expect(!checker.isOwn(otherBuild))
        #expect(!checker.isOwn(reference))
        // The answers are kept per file, so the next `pier` asks none of them again.
        let answers = Answers.read(scratch.cache + "/pier-plugin-builds")
        #expect(answers.count == 3)
        #expect(answers.values.contains(PluginBuild.sourceDigest))
        #expect(answers.values.contains(String(repeating: "ab", count: 32)))
        #expect(answers.values.contains("-"))
    }

    @Test func aReplacedFileIsAskedAgain() throws {
        let scratch = try Scratch()
        let path = scratch.bin + "/ipam"
        try FileManager.default.copyItem(atPath: builtProductsDirectory + "/pier-cni", toPath: path)
        let checker = InProcessPlugins(cacheDirectory: scratch.cache)
        #expect(checker.isOwn(path))
        try FileManager.default.removeItem(atPath: path)
        _ = try scratch.foreignPlugin("ipam", digest: PluginBuild.sourceDigest.replacingOccurrences(of: "a", with: "b"))
        #expect(!InProcessPlugins(cacheDirectory: scratch.cache).isOwn(path))
    }

    @Test func inProcessStdoutIsTheExecsByteForByte() throws {
        let scratch = try Scratch()
        let path = builtProductsDirectory + "/ipam"
        let list = try Self.ipamList(scratch.leases)
        let stdin = try list.request(forPluginAt: 0, command: .add, prevResult: nil, capabilityArgs: [:])
        let environment = [
            "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "inproc2", "CNI_NETNS": "/nonexistent/netns", "CNI_IFNAME": "eth0",
            "CNI_PATH": builtProductsDirectory,
        ]
        let plugins = InProcessPlugins(cacheDirectory: nil, allowThreads: true)
        let forked = try #require(try plugins.execution(path: path, environment: environment, stdin: stdin))
        try FileManager.default.removeItem(atPath: scratch.leases)
        let exec = try PluginExec.spawn(path: path, environment: environment, stdin: stdin)
        #expect(forked == exec)
        #expect(forked.succeeded)
        #expect(String(decoding: forked.stdout, as: UTF8.self).contains("10.98.7.2/24"))

        // A refusal is the same Error document with the same exit status.
        var bad = environment
        bad["CNI_IFNAME"] = ""
        let forkedError = try #require(try plugins.execution(path: path, environment: bad, stdin: stdin))
        let execError = try PluginExec.spawn(path: path, environment: bad, stdin: stdin)
        #expect(forkedError == execError)
        #expect(forkedError.exitCode == 1)
    }

    @Test func inProcessResultAndCacheEntryAreTheExecs() throws {
        let scratch = try Scratch()
        let list = try Self.ipamList(scratch.leases)
        var outputs: [(result: [UInt8], cache: [UInt8], lease: [UInt8])] = []
        for inProcess in [true, false] {
            let executor = Self.executor(scratch, path: [builtProductsDirectory], inProcess: inProcess)
            if inProcess { #expect(executor.inProcess?.isOwn(builtProductsDirectory + "/ipam") == true) }
            let result = try executor.add(list, Self.request)
            let cachePath = executor.cache.path(network: "inproc", containerID: "inproc1", ifName: "eth0")
            let lease = try Data(contentsOf: URL(fileURLWithPath: scratch.leases + "/inproc/10.98.7.2"))
            outputs.append(
                (
                    try result.encodedBytes(version: "1.1.0"),
                    Array(try Data(contentsOf: URL(fileURLWithPath: cachePath))),
                    Array(lease)
                ))
            try executor.delete(list, Self.request)
            #expect(!FileManager.default.fileExists(atPath: cachePath))
            #expect(!FileManager.default.fileExists(atPath: scratch.leases + "/inproc/10.98.7.2"))
            try FileManager.default.removeItem(atPath: scratch.leases)
        }
        #expect(outputs[0].result == outputs[1].result)
        #expect(outputs[0].cache == outputs[1].cache)
        #expect(outputs[0].lease == outputs[1].lease)
    }

    @Test func aForeignPluginOfTheSameNameIsExecd() throws {
        let scratch = try Scratch()
        _ = try scratch.foreignPlugin("ipam", digest: String(repeating: "0", count: 64))
        let executor = Self.executor(scratch, path: [scratch.bin, builtProductsDirectory], inProcess: true)
        let result = try executor.add(try Self.ipamList(scratch.leases), Self.request)
        #expect(result.ips.map(\.address.description) == ["10.99.0.9/24"])
        try executor.delete(try Self.ipamList(scratch.leases), Self.request)
        #expect(scratch.log == ["ADD", "DEL"])
        #expect(!FileManager.default.fileExists(atPath: scratch.leases))
    }

    struct CrashingPlugin: CNIPlugin {
        var crash: () -> Never
        var about: String { "crashes" }
        func add(_ request: CNIRequest) throws -> CNIResult { crash() }
        func delete(_ request: CNIRequest) throws { crash() }
        func check(_ request: CNIRequest) throws { crash() }
    }

    @Test func aCrashOrExitInPluginCodeIsThePluginsFailure() throws {
        let environment = [
            "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/nonexistent/netns", "CNI_IFNAME": "eth0",
            "CNI_PATH": "/nonexistent",
        ]
        let stdin = Array(#"{"cniVersion":"1.1.0","name":"n","type":"crash"}"#.utf8)
        let crashed = try InProcessPlugins.runForked(
            CrashingPlugin(crash: { fatalError("a bug in plugin code") }), executable: "/nonexistent/crash",
            environment: environment, stdin: stdin)
        // A Swift trap: SIGILL on x86-64, SIGTRAP on arm64.
        let signal = try #require(crashed.signal)
        #expect(crashed.exitCode == nil)
        #expect(PluginExec.failure(of: crashed).msg == "netplugin failed with no error message: signal: \(signal)")

        let exited = try InProcessPlugins.runForked(
            CrashingPlugin(crash: { exit(3) }), executable: "/nonexistent/exit", environment: environment, stdin: stdin)
        #expect(exited.exitCode == 3)
        #expect(PluginExec.failure(of: exited).msg == "netplugin failed with no error message: exit status 3")
        #expect(PluginExec.failure(of: exited).code == .internalError)
    }
}
