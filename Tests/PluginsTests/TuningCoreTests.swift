import CNI
import Foundation
import Glibc
import Testing

@testable import Plugins

/// The tuning core against the fake kernel: sysctls go through the seam's per-namespace
/// access, link settings over the container's netlink session, and every change is undone
/// when a later one fails or on DEL.
@Suite struct TuningCoreTests {
    static let key = "net/ipv4/conf/eth0/rp_filter"

    static func config(_ dataDir: String, sysctl: String = #""net.ipv4.conf.eth0.rp_filter":"0""#) -> String {
        #"{"cniVersion":"1.0.0","name":"tn","type":"tuning","dataDir":""# + dataDir + #"","sysctl":{"# + sysctl
            + #"},"mtu":1400,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":""#
            + Harness.netns + #""}]}}"#
    }

    func harness() throws -> Harness {
        let harness = try Harness()
        harness.fake.addLink("eth0", kind: "veth", in: Harness.netns)
        harness.fake.setSysctl(Self.key, "1", in: Harness.netns)
        return harness
    }

    func plugin(_ harness: Harness) -> TuningPlugin { TuningPlugin(kernel: harness.fake.kernel) }

    func run(_ harness: Harness, _ command: String, sysctl: String? = nil) -> Harness.Outcome {
        let config =
            sysctl.map { Self.config(harness.directory, sysctl: $0) } ?? Self.config(harness.directory)
        return harness.run(plugin(harness), command, config)
    }

    var savedFiles: (Harness) -> [String] {
        { harness in (try? FileManager.default.contentsOfDirectory(atPath: harness.directory)) ?? [] }
    }

    /// A config without `sysctl`/`mtu` of its own, with `keys` (a JSON fragment) added.
    static func config(_ dataDir: String, keys: String, chained: Bool = true) -> String {
        #"{"cniVersion":"1.0.0","name":"tn","type":"tuning","dataDir":""# + dataDir + "\""
            + (keys.isEmpty ? "" : "," + keys)
            + (chained ? #","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}]}"# : "") + "}"
    }

    @Test(arguments: [
        "net/../kernel/hostname", "net.ipv4/../../kernel.hostname", "/net/core/somaxconn", "kernel.hostname",
        "net..core.somaxconn", "net//core/somaxconn", "net", "..", "./net/core/somaxconn", "net.core.IFNAME/..",
    ])
    func keysThatLeaveProcSysNetAreRefusedBeforeAnyKernelAccess(key: String) throws {
        let harness = try harness()
        let keys = #""mtu":1400,"sysctl":{"net.core.somaxconn":"555",""# + key + #"":"pwned"}"#
        let outcome = harness.run(plugin(harness), "ADD", Self.config(harness.directory, keys: keys))
        #expect(outcome.code == 7, "\(key): \(outcome.stdout)")
        #expect(harness.fake.requestCount == 0)
        #expect(savedFiles(harness) == ["ipam"])
    }

    @Test(arguments: [
        ("", "MAC=zz", 4), ("", "MAC", 4), (#""mac":"c2:00:00:00:00:05""#, "MAC=01:00:5e:00:00:01", 4),
        (#""mac":"not-a-mac""#, "", 7), (#""runtimeConfig":{"mac":5}"#, "", 7), (#""mtu":-1"#, "", 7),
        (#""mtu":67"#, "", 7), (#""mtu":70000"#, "", 7), (#""mtu":"1400""#, "", 7), (#""txQLen":-1"#, "", 7),
        (#""promisc":"yes""#, "", 7), (#""allmulti":1"#, "", 7), (#""sysctl":{"net.core.somaxconn":500}"#, "", 7),
        (#""sysctl":"net.core.somaxconn=500""#, "", 7),
        (#""sysctl":{"net.core.somaxconn":"500","net/core/somaxconn":"600"}"#, "", 7),
        (#""dataDir":"relative/dir","mtu":1400"#, "", 7), (#""args":{"cni":{"mtu":10}}"#, "", 7),
    ])
    func badArgumentsAndConfigsAreRefusedWithTheirCodesBeforeAnyKernelAccess(
        keys: String, args: String, code: Int
    ) throws {
        let harness = try harness()
        var config = Self.config(harness.directory, keys: keys)
        if keys.contains("dataDir") { config = config.replacingOccurrences(of: #""dataDir":"/"#, with: #""x":"/"#) }
        let outcome = harness.run(plugin(harness), "ADD", config, args: args.isEmpty ? nil : args)
        #expect(outcome.code == code, "\(keys) \(args): \(outcome.stdout)")
        #expect(harness.fake.requestCount == 0)
        #expect(savedFiles(harness) == ["ipam"])
    }

    @Test func withoutAPreviousResultAddAndCheckAreRefused() throws {
        let harness = try harness()
        let config = Self.config(harness.directory, keys: #""mtu":1400"#, chained: false)
        for command in ["ADD", "CHECK"] {
            let outcome = harness.run(plugin(harness), command, config)
            #expect(outcome.code == 7, "\(command): \(outcome.stdout)")
        }
        #expect(harness.fake.requestCount == 0)
    }

    @Test func addWritesTheSysctlInTheContainerThenChangesTheLink() throws {
        let harness = try harness()
        let outcome = run(harness, "ADD")
        try #require(outcome.exitCode == 0, "\(outcome.stdout)")
        #expect(harness.fake.log == ["ctr: sysctl \(Self.key)=0", "ctr: set eth0 mtu 1400"])
        #expect(harness.fake.sysctl(Self.key, in: Harness.netns) == "0")
        #expect(harness.fake.sysctl(Self.key, in: "host") == nil)
    }

    @Test func aSysctlTheContainerDoesNotHaveIsRefusedBeforeAnyChange() throws {
        let harness = try harness()
        let outcome = run(harness, "ADD", sysctl: #""net.ipv4.conf.eth0.no_such_knob":"1""#)
        #expect(outcome.code == 7, "\(outcome.stdout)")
        #expect(harness.fake.log.isEmpty)
    }

    @Test func aRefusedLinkChangeUndoesTheSysctlAndForgetsTheSavedValues() throws {
        let harness = try harness()
        harness.fake.fail("ctr: set eth0 mtu 1400", errno: EINVAL)
        let before = savedFiles(harness)
        let outcome = run(harness, "ADD")
        #expect(outcome.code == 7, "\(outcome.stdout)")
        #expect(
            harness.fake.log == [
                "ctr: sysctl \(Self.key)=0", "ctr: set eth0 mtu 1400 -> errno \(EINVAL)", "ctr: sysctl \(Self.key)=1",
            ], "\(harness.fake.log)")
        #expect(harness.fake.sysctl(Self.key, in: Harness.netns) == "1")
        #expect(savedFiles(harness) == before, "\(savedFiles(harness))")
    }

    @Test func delPutsBackLinkSettingsThenSysctls() throws {
        let harness = try harness()
        try #require(run(harness, "ADD").exitCode == 0)
        harness.fake.clearLog()
        #expect(run(harness, "DEL").exitCode == 0)
        #expect(harness.fake.log == ["ctr: set eth0 mtu 1500", "ctr: sysctl \(Self.key)=1"])
        // Nothing left to restore: a second DEL changes nothing.
        harness.fake.clearLog()
        #expect(run(harness, "DEL").exitCode == 0)
        #expect(harness.fake.log.isEmpty)
    }

    @Test func delWhenTheNamespaceIsGoneOnlyForgetsTheSavedValues() throws {
        let harness = try harness()
        try #require(run(harness, "ADD").exitCode == 0)
        let saved = savedFiles(harness).count
        harness.fake.removeNamespace(Harness.netns)
        harness.fake.clearLog()
        #expect(run(harness, "DEL").exitCode == 0)
        #expect(harness.fake.requestCount == 0)
        #expect(savedFiles(harness).count == saved - 1, "\(savedFiles(harness))")
    }
}
