import CNI
import Glibc
import Testing

@testable import Plugins

/// The loopback core against the fake kernel.
@Suite struct LoopbackCoreTests {
    static let config = #"{"cniVersion":"1.0.0","name":"lo","type":"loopback"}"#

    func plugin(_ harness: Harness) -> LoopbackPlugin { LoopbackPlugin(kernel: harness.fake.kernel) }

    @Test func addBringsLoUpAndReportsTheAddressesTheKernelGaveIt() throws {
        let harness = try Harness()
        let outcome = harness.run(plugin(harness), "ADD", Self.config)
        try #require(outcome.exitCode == 0, "\(outcome.stdout)")
        #expect(harness.fake.log == ["ctr: set lo up"])
        #expect(outcome.addresses == ["127.0.0.1/8", "::1/128"])
        #expect((harness.fake.link("lo", in: Harness.netns)?.flags ?? 0) & 1 == 1)
    }

    @Test func aLoopbackThatLostItsIPv4AddressGetsItBack() throws {
        let harness = try Harness()
        harness.fake.setFlags(0x8 | 0x1, of: "lo", in: Harness.netns)
        harness.fake.addAddress("::1/128", to: "lo", in: Harness.netns)
        let outcome = harness.run(plugin(harness), "ADD", Self.config)
        try #require(outcome.exitCode == 0, "\(outcome.stdout)")
        #expect(harness.fake.log == ["ctr: set lo up", "ctr: add address 127.0.0.1/8 to lo"])
        #expect(outcome.addresses == ["127.0.0.1/8", "::1/128"])
    }

    @Test func aStrangerAddressOnLoIsAnError() throws {
        let harness = try Harness()
        harness.fake.addAddress("10.9.9.9/32", to: "lo", in: Harness.netns)
        let outcome = harness.run(plugin(harness), "ADD", Self.config)
        #expect(outcome.code == 999, "\(outcome.stdout)")
        #expect(outcome.stdout.contains("10.9.9.9"))
    }

    @Test func anLoThatIsNoLoopbackIsRefusedUntouched() throws {
        let harness = try Harness()
        harness.fake.setFlags(0, of: "lo", in: Harness.netns)
        let outcome = harness.run(plugin(harness), "ADD", Self.config)
        #expect(outcome.code == 999, "\(outcome.stdout)")
        #expect(harness.fake.log.isEmpty)
    }

    @Test func delSetsLoDownAndSucceedsWhenTheNamespaceIsGone() throws {
        let harness = try Harness()
        #expect(harness.run(plugin(harness), "ADD", Self.config).exitCode == 0)
        harness.fake.clearLog()
        #expect(harness.run(plugin(harness), "DEL", Self.config).exitCode == 0)
        #expect(harness.fake.log == ["ctr: set lo down"])
        let check = harness.run(plugin(harness), "CHECK", Self.config)
        #expect(check.code == 999, "CHECK of a down lo: \(check.stdout)")

        harness.fake.removeNamespace(Harness.netns)
        harness.fake.clearLog()
        #expect(harness.run(plugin(harness), "DEL", Self.config).exitCode == 0)
        #expect(harness.fake.requestCount == 0)
    }

    @Test func delWithABusyKernelSaysTryAgainLater() throws {
        let harness = try Harness()
        harness.fake.fail("ctr: set lo down", errno: EBUSY)
        #expect(harness.run(plugin(harness), "DEL", Self.config).code == 11)
    }
}
