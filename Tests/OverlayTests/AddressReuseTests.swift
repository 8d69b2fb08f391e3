import Foundation
import PierTestSupport
import Testing

/// Cluster-mode `ipam` hands out the lowest free address, so a container added right after
/// another was deleted gets the deleted one's address. Containers that talked to the old one
/// hold a REACHABLE neighbour entry with the old MAC; the new container's own announcement
/// reaches only its host's bridge (the VXLAN device floods nothing), so the other hosts'
/// agents must correct their containers' entries.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct AddressReuseTests {
    /// Three hosts, a talker on each; the old container on host 1 is deleted and the new one
    /// on host 0 gets its address: every talker reaches it within 2 s of the ADD.
    @Test(arguments: [("4", false), ("6", false), ("4", true), ("6", true)])
    func aReusedAddressIsReachableFromEveryHostAtOnce(family: String, runtimeMAC: Bool) throws {
        let cluster = try OverlayCluster(hosts: 3, store: .etcd)
        defer { cluster.tearDown() }
        let subnet = Int.random(in: 0...255)
        let network = OverlayNetwork(
            cluster: cluster, subnetIndex: subnet,
            extra: [
                "ipam": [
                    "type": "ipam",
                    "ranges": [[["subnet": "10.239.\(subnet).0/24"]], [["subnet": "fd39:\(subnet)::/64"]]],
                ]
            ])
        for index in 0..<3 { try cluster.startAgent(host: index, network: network.name) }

        let talkers = try (0..<3).map { index in
            let key = "talk\(index)-\(uniqueTag(4))"
            _ = try addresses(network, key, host: index)
            return try cluster.container(key)
        }
        let oldKey = "old-\(uniqueTag(4))"
        let reused = try #require(try addresses(network, oldKey, host: 1)[family])
        let oldMAC = try #require(try cluster.container(oldKey).link("eth0")?["address"] as? String)
        for (index, talker) in talkers.enumerated() {
            #expect(eventually(within: 5) { talker.canPing(reused, timeoutSeconds: 1) }, "talker \(index) -> old")
            #expect(try neighbourMAC(of: reused, in: talker) == oldMAC, "talker \(index)")
        }

        try network.delete(oldKey, host: 1)
        let newKey = "new-\(uniqueTag(4))"
        let requested: [String: Any] = runtimeMAC ? ["runtimeConfig": ["mac": "52:54:00:ab:cd:ef"]] : [:]
        let newAddresses = try addresses(network, newKey, host: 0, config: network.config(host: 0, requested))
        let added = Date()
        try #require(newAddresses[family] == reused, "the lowest free address is reused: \(newAddresses)")
        let newMAC = try #require(try cluster.container(newKey).link("eth0")?["address"] as? String)
        if runtimeMAC { #expect(newMAC == "52:54:00:ab:cd:ef") }

        // Every talker at once: the 2 s are counted from the ADD, not from the previous talker.
        let results = ReachTimes(count: talkers.count)
        DispatchQueue.concurrentPerform(iterations: talkers.count) { index in
            let reached = eventually(within: 2, since: added) { answers(talkers[index], reused) }
            results.set(index, reached ? Date().timeIntervalSince(added) : nil)
        }
        for (index, talker) in talkers.enumerated() {
            let elapsed = results.get(index)
            #expect(elapsed != nil, "talker on host \(index) reaches the new container at \(reused) within 2 s")
            #expect(try neighbourMAC(of: reused, in: talker) == newMAC, "talker on host \(index)")
        }
    }

    /// ADDs `key` on host `index`; its addresses by family ("4", "6").
    private func addresses(
        _ network: OverlayNetwork, _ key: String, host index: Int, config: String? = nil
    ) throws -> [String: String] {
        let container = try network.cluster.container(key)
        let output = try network.run("ADD", host: index, container: container, containerID: key, config: config)
        guard output.status == 0 else { throw PluginFailed(verb: "ADD \(key)", output: output) }
        var found: [String: String] = [:]
        for ip in output.object["ips"] as? [[String: Any]] ?? [] {
            guard let address = (ip["address"] as? String)?.split(separator: "/").first else { continue }
            found[address.contains(":") ? "6" : "4"] = String(address)
        }
        return found
    }
}

/// Per-talker outcomes written from concurrent checks.
private final class ReachTimes: @unchecked Sendable {
    private var values: [Double?]
    private let lock = NSLock()
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: Double?) { lock.withLock { values[index] = value } }
    func get(_ index: Int) -> Double? { lock.withLock { values[index] } }
}
