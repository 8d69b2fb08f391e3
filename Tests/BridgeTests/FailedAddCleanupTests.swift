import Foundation
import PierTestSupport
import Testing

/// A bridge ADD that fails after creating the bridge and the network's `inet pier` elements
/// removes them again, unless another attachment uses the network.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct FailedAddCleanupTests {
    let helper = BridgeTests()

    /// The comments of the elements of `inet pier` set `set` in `host` (each names its owner).
    static func elements(_ set: String, in host: TestHost) throws -> [String] {
        let listing = try host.run(["nft", "-j", "list", "set", "inet", "pier", set])
        guard listing.succeeded else { return [] }
        return try host.nftJSON(["list", "set", "inet", "pier", set]).compactMap { $0["set"] as? [String: Any] }
            .flatMap { ($0["elem"] as? [Any]) ?? [] }
            .map { (($0 as? [String: Any])?["elem"] as? [String: Any])?["comment"] as? String ?? "\($0)" }.sorted()
    }

    /// The spoof check's set made with another key type beforehand: the ADD fails at its very
    /// last step, after the network's masquerade and bridge elements were committed.
    @Test func failureAfterTheNetworkRulesRemovesThemAndTheBridge() throws {
        let network = BridgeTests.network(subnet4: "10.93.0.0/24", subnet6: "fd93::/64", ["macspoofchk": true])
        defer { network.cleanUp() }
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            try host.mustRun(["nft", "add", "table", "bridge", "pier"])
            try host.mustRun(["nft", "add", "set", "bridge", "pier", "spoofcheck_ports", "{ type ipv4_addr; }"])
            let output = try PluginRunner("bridge").run(
                "ADD", config: network.config(), containerID: "c1", netns: container.path, ifname: "eth0", in: host)
            try #require(output.status != 0, "the ADD was meant to fail: \(output.stdout)")
            let bridge = try #require(network.plugin["bridge"] as? String)
            #expect(try host.link(bridge) == nil, "bridge left behind")
            #expect(try Self.elements("masq_v4", in: host).isEmpty)
            #expect(try Self.elements("same_bridge", in: host).isEmpty)
            #expect(try host.linkNames() == ["lo"])
            #expect(network.leases().isEmpty)
        }
    }

    /// IPAM refuses after the bridge was made: the bridge goes; with another container on the
    /// network, the bridge and its elements stay.
    @Test func failureBeforeTheRulesRemovesOnlyWhatNoOneUses() throws {
        let network = BridgeTests.network(subnet4: "10.94.0.0/24", subnet6: "fd94::/64")
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, first, second) = (hosts[0], hosts[1], hosts[2])
            let bridge = try #require(network.plugin["bridge"] as? String)
            let refused = try PluginRunner("bridge").run(
                "ADD", config: network.config(), containerID: "c1", netns: first.path, ifname: "eth0",
                args: "IP=10.99.0.1", in: host)
            try #require(refused.status != 0, "the ADD was meant to fail: \(refused.stdout)")
            #expect(try host.link(bridge) == nil, "bridge left behind")

            _ = try helper.add(network, first, on: host)
            let masquerade = try Self.elements("masq_v4", in: host)
            #expect(!masquerade.isEmpty)
            let again = try PluginRunner("bridge").run(
                "ADD", config: network.config(), containerID: "c2", netns: second.path, ifname: "eth0",
                args: "IP=10.99.0.1", in: host)
            try #require(again.status != 0, "the ADD was meant to fail: \(again.stdout)")
            #expect(try host.link(bridge) != nil)
            #expect(try Self.elements("masq_v4", in: host) == masquerade, "\(again.stdout) \(masquerade)")
            #expect(first.canPing("10.94.0.1"))
            #expect(try helper.delete(network, first, id: first.name, on: host).status == 0)
        }
    }
}
