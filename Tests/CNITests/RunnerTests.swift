import Testing

@testable import CNI

/// A plugin that records what it was asked and answers as configured.
final class FakePlugin: CNIPlugin, @unchecked Sendable {
    var about = "fake plugin v0"
    var supportedVersions = CNIVersion.all
    var acceptsOwnNetworkNamespace = false
    var result = CNIResult()
    var failure: (any Error)?
    private(set) var calls: [CNICommand] = []
    private(set) var lastRequest: CNIRequest?

    func record(_ request: CNIRequest) throws {
        calls.append(request.command)
        lastRequest = request
        if let failure { throw failure }
    }

    func add(_ request: CNIRequest) throws -> CNIResult {
        try record(request)
        return result
    }
    func delete(_ request: CNIRequest) throws { try record(request) }
    func check(_ request: CNIRequest) throws { try record(request) }
    func garbageCollect(_ request: CNIRequest) throws { try record(request) }
    func status(_ request: CNIRequest) throws { try record(request) }
}

/// A plugin relying on the protocol's defaults for GC and STATUS.
struct MinimalPlugin: CNIPlugin {
    var about: String { "minimal" }
    func add(_ request: CNIRequest) throws -> CNIResult { request.prevResult ?? CNIResult() }
    func delete(_ request: CNIRequest) throws {}
    func check(_ request: CNIRequest) throws {}
}

@Suite struct RunnerTests {
    static func environment(_ command: String, _ changes: [String: String?] = [:]) -> [String: String] {
        var variables = [
            "CNI_COMMAND": command, "CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/run/netns/does-not-exist",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
        ]
        for (key, value) in changes { variables[key] = value }
        return variables
    }

    static func config(_ version: String = "1.1.0", extra: String = "") -> [UInt8] {
        bytes(#"{"cniVersion":"\#(version)","name":"testnet","type":"fake"\#(extra)}"#)
    }

    func run(
        _ plugin: some CNIPlugin, _ command: String, version: String = "1.1.0", changes: [String: String?] = [:],
        stdin: [UInt8]? = nil
    ) -> PluginOutcome {
        PluginRunner.run(
            plugin, environment: RunnerTests.environment(command, changes),
            stdin: stdin ?? RunnerTests.config(version))
    }

    /// Reads the Error document a failed run printed.
    func error(of outcome: PluginOutcome) throws -> CNIError {
        #expect(outcome.exitCode != 0)
        return try #require(CNIError(json: try JSONValue(parsing: outcome.stdout)))
    }

    @Test func bareInvocationPrintsAboutToStderr() {
        let outcome = PluginRunner.run(FakePlugin(), environment: [:], stdin: [])
        #expect(outcome.exitCode == 0)
        #expect(outcome.stdout.isEmpty)
        #expect(
            outcome.stderrText
                == "fake plugin v0\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n")
    }

    @Test func versionIgnoresStdinButEchoesAKnownVersion() {
        let all = #"["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]"#
        let plain = PluginRunner.run(FakePlugin(), environment: ["CNI_COMMAND": "VERSION"], stdin: [])
        #expect(plain.exitCode == 0)
        #expect(plain.stdoutText == #"{"cniVersion":"1.1.0","supportedVersions":\#(all)}"#)
        let asked = PluginRunner.run(
            FakePlugin(), environment: ["CNI_COMMAND": "VERSION"], stdin: bytes(#"{"cniVersion":"0.4.0"}"#))
        #expect(asked.stdoutText == #"{"cniVersion":"0.4.0","supportedVersions":\#(all)}"#)
        let garbage = PluginRunner.run(FakePlugin(), environment: ["CNI_COMMAND": "VERSION"], stdin: bytes("{{{"))
        #expect(garbage.exitCode == 0)
        #expect(garbage.stdoutText.hasPrefix(#"{"cniVersion":"1.1.0""#))
    }

    @Test func addPrintsTheResultInTheInputVersion() throws {
        let plugin = FakePlugin()
        plugin.result = CNIResult(
            interfaces: [.init(name: "eth0", mtu: 1500, sandbox: "/run/netns/x")],
            ips: [.init(address: try prefix("10.0.0.2/24"), interface: 0)])
        let outcome = run(plugin, "ADD", version: "0.4.0")
        #expect(outcome.exitCode == 0)
        #expect(
            outcome.stdoutText
                == #"{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"version":"4","interface":0,"address":"10.0.0.2/24"}]}"#
        )
        #expect(plugin.calls == [.add])
        let request = try #require(plugin.lastRequest)
        #expect(request.containerID == "ctr1")
        #expect(request.ifName == "eth0")
        #expect(request.netns == "/run/netns/does-not-exist")
        #expect(request.config.name == "testnet")
        #expect(request.stdin == RunnerTests.config("0.4.0"))
        #expect(outcome.stderr.isEmpty)
    }

    @Test func addPassesPrevResultThrough() throws {
        let previous = #","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}"#
        let outcome = PluginRunner.run(
            MinimalPlugin(), environment: RunnerTests.environment("ADD"),
            stdin: RunnerTests.config("1.0.0", extra: previous))
        #expect(outcome.stdoutText == #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}"#)
    }

    @Test func layer2ResultInA020ConfigIsAnError() throws {
        let plugin = FakePlugin()
        plugin.result = CNIResult(interfaces: [.init(name: "eth0")])
        let outcome = run(plugin, "ADD", version: "0.2.0")
        let error = try error(of: outcome)
        #expect(error.code == .incompatibleVersion)
        #expect(outcome.stdoutText.hasPrefix(#"{"cniVersion":"0.2.0","code":1,"#))
    }

    @Test(arguments: ["DEL", "CHECK", "GC", "STATUS"])
    func otherVerbsPrintNothingOnSuccess(_ command: String) {
        let plugin = FakePlugin()
        let outcome = run(plugin, command)
        #expect(outcome.exitCode == 0)
        #expect(outcome.stdout.isEmpty)
        #expect(plugin.calls.map(\.rawValue) == [command])
    }

    @Test(arguments: ["GC", "STATUS"])
    func unimplementedGCAndStatusSucceed(_ command: String) {
        let outcome = PluginRunner.run(
            MinimalPlugin(), environment: ["CNI_COMMAND": command, "CNI_PATH": "/p"], stdin: RunnerTests.config())
        #expect(outcome.exitCode == 0)
        #expect(outcome.stdout.isEmpty)
    }

    @Test func deleteWithoutNetnsIsAccepted() {
        let plugin = FakePlugin()
        let outcome = run(plugin, "DEL", changes: ["CNI_NETNS": nil])
        #expect(outcome.exitCode == 0)
        #expect(plugin.calls == [.delete])
    }

    @Test func missingVariablesGiveTheExactErrorDocument() {
        let plugin = FakePlugin()
        let outcome = run(plugin, "ADD", changes: ["CNI_NETNS": nil, "CNI_IFNAME": ""])
        #expect(outcome.exitCode == 1)
        #expect(
            outcome.stdoutText
                == #"{"cniVersion":"1.1.0","code":4,"msg":"required env variables [CNI_NETNS,CNI_IFNAME] missing"}"#)
        #expect(plugin.calls.isEmpty)
    }

    @Test func unknownCommandIsCode4() throws {
        let error = try error(of: run(FakePlugin(), "FROB"))
        #expect(error == CNIError(.invalidEnvironmentVariables, "unknown CNI_COMMAND: FROB"))
    }

    @Test func badStdinCodes() throws {
        #expect(try error(of: run(FakePlugin(), "ADD", stdin: bytes("{oops"))).code == .decodingFailure)
        #expect(
            try error(of: run(FakePlugin(), "ADD", stdin: bytes(#"{"cniVersion":"1.0.0"}"#))).code
                == .invalidNetworkConfig)
        let failingRead = PluginRunner.run(
            FakePlugin(), environment: RunnerTests.environment("ADD"),
            readStdin: { () throws(CNIError) in throw CNIError(.ioFailure, "error reading from stdin: EIO") })
        #expect(try error(of: failingRead).code == .ioFailure)
    }

    @Test func attachmentIdentityIsValidatedAfterTheConfig() throws {
        let badID = try error(of: run(FakePlugin(), "ADD", changes: ["CNI_CONTAINERID": "a b"]))
        #expect(badID == CNIError(.invalidEnvironmentVariables, "invalid characters in containerID", details: "a b"))
        let badName = try error(of: run(FakePlugin(), "CHECK", changes: ["CNI_IFNAME": "eth0:1"]))
        #expect(badName.msg == "interface name contains / or : or whitespace characters")
        let both = run(FakePlugin(), "ADD", changes: ["CNI_CONTAINERID": "a b"], stdin: bytes("{oops"))
        #expect(try error(of: both).code == .decodingFailure)
    }

    /// Malformed CNI_ARGS fail every verb that names an attachment, whether the plugin reads
    /// the keys or not (the fake reads none); the plugin is not called.
    @Test(arguments: ["ADD", "DEL", "CHECK"], ["=", "=;=;=", ";;", "IgnoreUnknown=1;=v"])
    func malformedArgsAreCode4ForEveryPlugin(command: String, args: String) throws {
        let plugin = FakePlugin()
        let outcome = run(plugin, command, changes: ["CNI_ARGS": args])
        #expect(try error(of: outcome).code == .invalidEnvironmentVariables)
        #expect(plugin.calls.isEmpty)
    }

    @Test func versionMismatchIsCode1WithDetails() throws {
        let plugin = FakePlugin()
        plugin.supportedVersions = ["0.4.0", "1.0.0"]
        let outcome = run(plugin, "ADD", version: "0.3.1")
        #expect(
            outcome.stdoutText
                == #"{"cniVersion":"0.3.1","code":1,"msg":"incompatible CNI versions","details":"config is \"0.3.1\", plugin supports [\"0.4.0\" \"1.0.0\"]"}"#
        )
        #expect(plugin.calls.isEmpty)
    }

    @Test func absentConfigVersionMeans010() throws {
        let plugin = FakePlugin()
        plugin.supportedVersions = ["1.0.0"]
        let error = try error(of: run(plugin, "ADD", stdin: bytes(#"{"name":"n"}"#)))
        #expect(error.details.hasPrefix(#"config is "0.1.0""#))
    }

    @Test func verbGates() throws {
        #expect(
            try error(of: run(FakePlugin(), "CHECK", version: "0.3.1"))
                == CNIError(.incompatibleVersion, "config version does not allow CHECK"))
        #expect(
            try error(of: run(FakePlugin(), "GC", version: "1.0.0"))
                == CNIError(.incompatibleVersion, "config version does not allow GC"))
        #expect(
            try error(of: run(FakePlugin(), "STATUS", version: "1.0.0"))
                == CNIError(.incompatibleVersion, "config version does not allow STATUS"))
        #expect(run(FakePlugin(), "CHECK", version: "0.4.0").exitCode == 0)
    }

    @Test(arguments: ["ADD", "DEL"])
    func ownNetnsIsRefused(_ command: String) throws {
        let plugin = FakePlugin()
        let outcome = run(plugin, command, changes: ["CNI_NETNS": "/proc/self/ns/net"])
        #expect(try error(of: outcome).code == .invalidNetNS)
        #expect(plugin.calls.isEmpty)
        for override in ["1", "true", "TRUE"] {
            let allowed = run(
                FakePlugin(), command, changes: ["CNI_NETNS": "/proc/self/ns/net", "CNI_NETNS_OVERRIDE": override])
            #expect(allowed.exitCode == 0)
        }
        let hostPlugin = FakePlugin()
        hostPlugin.acceptsOwnNetworkNamespace = true
        #expect(run(hostPlugin, command, changes: ["CNI_NETNS": "/proc/self/ns/net"]).exitCode == 0)
    }

    @Test func checkDoesNotRunTheNetnsCheck() {
        #expect(run(FakePlugin(), "CHECK", changes: ["CNI_NETNS": "/proc/self/ns/net"]).exitCode == 0)
    }

    struct DeviceBusy: CNIErrorConvertible {
        var cniError: CNIError { CNIError(.tryAgainLater, "device busy", details: "EBUSY") }
    }
    struct Opaque: Error, CustomStringConvertible {
        var description: String { "netlink: operation not permitted" }
    }

    @Test func pluginErrorsAreMappedInOnePlace() throws {
        let plugin = FakePlugin()
        plugin.failure = Opaque()
        let opaque = run(plugin, "ADD", version: "1.0.0")
        #expect(opaque.stdoutText == #"{"cniVersion":"1.0.0","code":999,"msg":"netlink: operation not permitted"}"#)
        plugin.failure = DeviceBusy()
        #expect(try error(of: run(plugin, "DEL")) == CNIError(.tryAgainLater, "device busy", details: "EBUSY"))
        plugin.failure = CNIError(.pluginNotAvailable, "bridge missing")
        #expect(try error(of: run(plugin, "STATUS")).code == .pluginNotAvailable)
    }
}

@Suite struct NetworkNamespaceCheckTests {
    @Test func comparesDeviceAndInodeNotPaths() throws {
        // Another namespace's handle (here the UTS one) stands in for a container netns: creating a
        // real network namespace needs privileges a unit test should not assume.
        try NetworkNamespaceCheck.rejectOwnNamespace("/proc/self/ns/uts")
        expectCNIError(.invalidNetNS) { try NetworkNamespaceCheck.rejectOwnNamespace("/proc/self/ns/net") }
        expectCNIError(.invalidNetNS) {
            try NetworkNamespaceCheck.rejectOwnNamespace("/proc/self/ns/uts", ownPath: "/proc/thread-self/ns/uts")
        }
    }

    @Test func uninspectablePathsAreLeftToThePlugin() throws {
        try NetworkNamespaceCheck.rejectOwnNamespace("")
        try NetworkNamespaceCheck.rejectOwnNamespace("/run/netns/definitely-not-here")
    }
}
