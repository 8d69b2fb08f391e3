import Foundation
import PierTestSupport
import Testing

/// Agents follow the store: deletes and adds on one host show up on the others within 2 s,
/// restarts resync idempotently and remove stale entries, and a host whose record goes loses
/// its endpoints everywhere.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ConvergenceTests {
    @Test func deletesAndAddsReachOtherHostsWithinTwoSeconds() throws {
        let cluster = try OverlayCluster(hosts: 3, store: .etcd)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        for index in 0..<3 { try cluster.startAgent(host: index, network: network.name) }
        let aKey = "a-\(uniqueTag(4))"
        let bKey = "b-\(uniqueTag(4))"
        let a = try network.add(aKey, host: 0)
        _ = try network.add(bKey, host: 1)
        let c = try network.add("c-\(uniqueTag(4))", host: 2)
        for index in 1..<3 {
            #expect(try eventually(within: 2) { try network.kernelEntries(host: index).neighbors[a] != nil })
        }

        // Deleted on A: gone from B and C within 2 s.
        try network.delete(aKey, host: 0)
        for index in 1..<3 {
            let gone = try eventually(within: 2) {
                let entries = try network.kernelEntries(host: index)
                return entries.neighbors[a] == nil && entries.fdb.count == 1
            }
            let entries = try network.kernelEntries(host: index)
            #expect(gone, "host \(index) still has \(a): \(entries)")
        }

        // Added on A: reachable from B within 2 s.
        let newKey = "n-\(uniqueTag(4))"
        let added = try network.add(newKey, host: 0)
        let bContainer = try cluster.container(bKey)
        let started = Date()
        let reachable = eventually(within: 2) { bContainer.canPing(added, timeoutSeconds: 1) }
        #expect(reachable, "\(added) not reachable from B after \(Date().timeIntervalSince(started)) s")
        #expect(bContainer.canPing(c))
    }

    @Test func restartResyncsAndRemovesStaleEntries() throws {
        let cluster = try OverlayCluster(hosts: 2, store: .file)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        let remote = try network.add("r-\(uniqueTag(4))", host: 1)
        _ = try network.add("l-\(uniqueTag(4))", host: 0)
        // Host 0 learnt of host 1's endpoint during its own ADD (no agent yet).
        #expect(try network.kernelEntries(host: 0).neighbors[remote] != nil)

        // Stale entries nobody published, and a wrong destination for a real one.
        let host = cluster.hosts[0]
        try host.mustRun([
            "ip", "neigh", "replace", "10.239.250.9", "lladdr", "02:00:00:00:00:09", "dev",
            network.vxlanName, "nud", "permanent",
        ])
        try host.mustRun([
            "bridge", "fdb", "replace", "02:00:00:00:00:09", "dev", network.vxlanName,
            "dst", "10.238.250.9", "self", "permanent",
        ])
        let mac = try #require(try network.kernelEntries(host: 0).neighbors[remote])
        try host.mustRun([
            "bridge", "fdb", "replace", mac, "dev", network.vxlanName, "dst", "10.238.250.8",
            "self", "permanent",
        ])

        try cluster.startAgent(host: 0, network: network.name)
        let repaired = try eventually(within: 3) {
            let entries = try network.kernelEntries(host: 0)
            return entries.neighbors == [remote: mac] && entries.fdb == [mac: cluster.vtep(1)]
        }
        let entries = try network.kernelEntries(host: 0)
        #expect(repaired, "\(entries) \(cluster.agentLog(host: 0, network: network.name))")

        // SIGTERM stops the agent; a second agent's full resync changes nothing.
        #expect(cluster.stopAgent(host: 0, network: network.name, signal: SIGTERM), "the agent ignored SIGTERM")
        #expect(cluster.agentLog(host: 0, network: network.name).contains("stopped"))
        let before = try network.kernelEntries(host: 0)
        try cluster.startAgent(host: 0, network: network.name)
        usleep(700_000)
        let after = try network.kernelEntries(host: 0)
        #expect(after.fdb == before.fdb && after.neighbors == before.neighbors)
    }

    @Test func aHostWhoseRecordGoesLosesItsEndpointsEverywhere() throws {
        let cluster = try OverlayCluster(hosts: 2, store: .file)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        try cluster.startAgent(host: 0, network: network.name)
        _ = try network.add("x-\(uniqueTag(4))", host: 0)
        let remote = try network.add("y-\(uniqueTag(4))", host: 1)
        #expect(try eventually(within: 2) { try network.kernelEntries(host: 0).neighbors[remote] != nil })
        // The file store keeps one file per key (`/` encoded): remove host 1's record.
        let hostFile = "\(cluster.storeDirectory)/data/pier%2Foverlay%2F\(network.name)%2Fhosts%2Fh1"
        #expect(FileManager.default.fileExists(atPath: hostFile))
        try FileManager.default.removeItem(atPath: hostFile)
        // Bump the revision so watchers wake (as any store write would).
        let revisionPath = "\(cluster.storeDirectory)/revision"
        let revision = Int((try? String(contentsOfFile: revisionPath, encoding: .utf8)) ?? "0") ?? 0
        try String(revision + 1).write(toFile: revisionPath, atomically: true, encoding: .utf8)
        let gone = try eventually(within: 2) {
            let entries = try network.kernelEntries(host: 0)
            return entries.neighbors.isEmpty && entries.fdb.isEmpty
        }
        #expect(gone)
    }
}
