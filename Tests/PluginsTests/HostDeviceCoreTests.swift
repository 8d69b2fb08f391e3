import CNI
import Glibc
import Testing

@testable import Plugins

/// The host plugin's device mode against the fake kernel: every move goes through a scratch
/// namespace, a failure after the move puts the device back as it was, DEL returns it.
@Suite struct HostDeviceCoreTests {
    static let config = #"{"cniVersion":"1.0.0","name":"hd","type":"host-device","device":"eth5"}"#

    func harness() throws -> Harness {
        let harness = try Harness()
        harness.fake.addLink("eth5", kind: nil, flags: 0x1)
        return harness
    }

    func plugin(_ harness: Harness) -> HostPlugin { HostPlugin(deviceOnly: true, kernel: harness.fake.kernel) }

    static let moveIn = [
        "host: set eth5 netns scratch", "scratch: set eth5 name eth0", "scratch: set eth0 alias pier-host:eth5:1500:up",
        "scratch: set eth0 netns ctr",
    ]
    static let moveOut = [
        "ctr: set eth0 netns scratch", "scratch: set eth0 name eth5", "scratch: set eth5 netns host",
        "host: set eth5 alias ", "host: set eth5 up",
    ]

    @Test func addMovesTheDeviceThroughAScratchNamespace() throws {
        let harness = try harness()
        let outcome = harness.run(plugin(harness), "ADD", Self.config)
        try #require(outcome.exitCode == 0, "\(outcome.stdout)")
        #expect(harness.fake.log == Self.moveIn + ["ctr: set eth0 up"], "\(harness.fake.log)")
        #expect(harness.fake.link("eth5") == nil)
        #expect(harness.fake.link("eth0", in: Harness.netns)?.alias == "pier-host:eth5:1500:up")
    }

    @Test func aFailureAfterTheMovePutsTheDeviceBackAsItWas() throws {
        let harness = try harness()
        harness.fake.fail("ctr: set eth0 up", errno: EPERM)
        let outcome = harness.run(plugin(harness), "ADD", Self.config)
        #expect(outcome.code == 999, "\(outcome.stdout)")
        #expect(
            harness.fake.log == Self.moveIn + ["ctr: set eth0 up -> errno \(EPERM)"] + Self.moveOut,
            "\(harness.fake.log)")
        let device = try #require(harness.fake.link("eth5"))
        #expect(device.flags & 1 == 1 && (device.alias ?? "").isEmpty)
        #expect(harness.fake.links[Harness.netns]?.map(\.name) == ["lo"])
    }

    @Test func delReturnsTheDeviceAndSucceedsWhenTheNamespaceIsGone() throws {
        let harness = try harness()
        try #require(harness.run(plugin(harness), "ADD", Self.config).exitCode == 0)
        harness.fake.clearLog()
        #expect(harness.run(plugin(harness), "DEL", Self.config).exitCode == 0)
        #expect(harness.fake.log == Self.moveOut, "\(harness.fake.log)")
        #expect(harness.fake.link("eth5") != nil)

        harness.fake.removeNamespace(Harness.netns)
        harness.fake.clearLog()
        #expect(harness.run(plugin(harness), "DEL", Self.config).exitCode == 0)
        #expect(harness.fake.log.isEmpty)
    }

    @Test func aMissingDeviceIsRefusedBeforeAnyChange() throws {
        let harness = try harness()
        let config = Self.config.replacingOccurrences(of: "eth5", with: "nosuch0")
        let outcome = harness.run(plugin(harness), "ADD", config)
        #expect(outcome.code == 7, "\(outcome.stdout)")
        #expect(harness.fake.log.isEmpty)
    }
}
