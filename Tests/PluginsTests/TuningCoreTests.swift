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
