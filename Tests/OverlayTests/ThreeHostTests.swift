import Foundation
import PierTestSupport
import Testing

/// Three test hosts on one underlay switch, two containers each, one `pier agent` per host:
/// the whole mesh talks, and each host's VXLAN device holds exactly the four remote endpoints.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ThreeHostTests {
    @Test(arguments: [OverlayCluster.StoreKind.file, .etcd])
    func everyContainerReachesEveryOther(store: OverlayCluster.StoreKind) throws {
        let cluster = try OverlayCluster(hosts: 3, store: store)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        for index in 0..<3 { try cluster.startAgent(host: index, network: network.name) }

        var addresses: [String: String] = [:]
        var hostOf: [String: Int] = [:]
        for index in 0..<3 {
            for slot in 0..<2 {
                let key = "c\(index)\(slot)-\(uniqueTag(4))"
                addresses[key] = try network.add(key, host: index)
                hostOf[key] = index
            }
        }
        #expect(Set(addresses.values).count == 6, "addresses must be unique across hosts")

        // Each host: exactly the 4 remote endpoints, permanent, pointing at the right VTEP.
        for index in 0..<3 {
            let remote = addresses.filter { hostOf[$0.key] != index }
            let converged = try eventually(within: 3) {
                let entries = try network.kernelEntries(host: index)
                return Set(entries.neighbors.keys) == Set(remote.values) && entries.fdb.count == 4
            }
            let entries = try network.kernelEntries(host: index)
            #expect(converged, "host \(index): \(entries) \(cluster.agentLog(host: index, network: network.name))")
            for (key, address) in remote {
                guard let mac = entries.neighbors[address] else { continue }
                #expect(entries.fdb[mac] == cluster.vtep(hostOf[key] ?? -1))
            }
        }

        for (from, _) in addresses {
            let container = try cluster.container(from)
            for (to, address) in addresses where to != from {
                #expect(container.canPing(address), "\(from) -> \(to) (\(address))")
            }
        }
    }
}
