import Foundation
import PierTestSupport
import Testing

/// `internal` on an overlay, as on a bridge (`pier network create -d vxlan-overlay --internal`):
/// the overlay bridge joins `inet pier`'s `internal_bridges`, so a host forwards nothing out of
/// the overlay or into it, even along a route a container adds itself. An ordinary overlay
/// beside it, without masquerade, is the control: the same route works there.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct InternalOverlayTests {
    @Test func anInternalOverlayForwardsNothingOutOrInWhereAnOrdinaryOneDoes() throws {
        let cluster = try OverlayCluster(hosts: 1, store: .file)
        defer { cluster.tearDown() }
        let vni = Int.random(in: 4000...4498)
        let sealed = OverlayNetwork(
            cluster: cluster, vni: vni, subnetIndex: 20, extra: ["isGateway": true, "internal": true])
        let open = OverlayNetwork(cluster: cluster, vni: vni + 1, subnetIndex: 21, extra: ["isGateway": true])
        let inside = try sealed.add("in-\(uniqueTag(4))", host: 0)
        let outside = try open.add("out-\(uniqueTag(4))", host: 0)
        let switchAddress = "\(cluster.underlayPrefix).254"
        // Routes both ways along the host: the containers to the underlay, the switch back.
        for (network, key) in [(sealed, "in"), (open, "out")] {
            let container = try #require(cluster.containers.first { $0.key.hasPrefix(key + "-") }?.value)
            try container.mustRun([
                "ip", "route", "add", "\(cluster.underlayPrefix).0/24", "via", "\(network.subnet).1",
            ])
            try cluster.switchHost.mustRun(["ip", "route", "add", "\(network.subnet).0/24", "via", cluster.vtep(0)])
        }
        let sealedContainer = try #require(cluster.containers.first { $0.key.hasPrefix("in-") }?.value)
        let openContainer = try #require(cluster.containers.first { $0.key.hasPrefix("out-") }?.value)

        #expect(openContainer.canPing(switchAddress), "the control gets out")
        #expect(cluster.switchHost.canPing(outside), "and in")
        #expect(!sealedContainer.canPing(switchAddress), "nothing leaves an internal overlay")
        #expect(!cluster.switchHost.canPing(inside), "nothing enters it")
        #expect(sealedContainer.canPing("\(sealed.subnet).1"), "its gateway (the name server's address) answers")

        func internalBridges() throws -> [String] {
            let set = try cluster.hosts[0].nftJSON(["list", "set", "inet", "pier", "internal_bridges"])
                .compactMap { $0["set"] as? [String: Any] }.first
            return (set?["elem"] as? [[String: Any]] ?? []).compactMap {
                ($0["elem"] as? [String: Any])?["val"] as? String
            }
        }
        #expect(try internalBridges() == [sealed.bridgeName])
        // GC with no attachment left takes the devices, and the element with them.
        for (network, key) in [(sealed, "in-"), (open, "out-")] {
            try network.delete(cluster.containers.first { $0.key.hasPrefix(key) }?.key ?? "", host: 0)
        }
        let gc = try sealed.run("GC", host: 0, config: sealed.config(host: 0, ["cni.dev/valid-attachments": []]))
        #expect(gc.status == 0, "\(gc.stdout)")
        #expect(try internalBridges() == [])
    }
}
