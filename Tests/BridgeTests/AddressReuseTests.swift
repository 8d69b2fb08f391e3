import Foundation
import PierTestSupport
import Testing

/// An address handed to a new container right after its previous owner was deleted: a peer
/// that talked to the old container holds a REACHABLE neighbour entry with the old MAC, and
/// only the new container's announcement (gratuitous ARP, unsolicited NA) corrects it before
/// the kernel's neighbour state machine gives up on the old entry, tens of seconds later.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct AddressReuseTests {
    let bridgePlugin = PluginRunner("bridge")

    /// B (and the host, through the gateway) talks to A at X; A is deleted; C gets X (with a
    /// MAC of its own, or one the runtime chose); B reaches C within 2 s of C's ADD, and B's
    /// neighbour entry names C's MAC; so does the host.
    @Test(arguments: [("4", false), ("6", false), ("4", true), ("6", true)])
    func aReusedAddressIsReachableAtOnce(family: String, runtimeMAC: Bool) throws {
        let network = BridgeTests.network(subnet4: "10.78.0.0/24", subnet6: "fd78::/64")
        defer { network.cleanUp() }
        try withTestHosts(4) { hosts in
            let (host, a, b, c) = (hosts[0], hosts[1], hosts[2], hosts[3])
            let resultA = try add(network, a, id: "a", on: host)
            _ = try add(network, b, id: "b", on: host)
            let reused = try #require(BridgeTests.containerAddress(resultA, family: family))
            #expect(b.canPing(reused), "B reaches A at \(reused)")
            // The host, through its gateway address on the bridge, caches A's MAC too.
            #expect(host.canPing(reused), "the host reaches A at \(reused)")
            let macA = try #require(try a.link("eth0")?["address"] as? String)
            #expect(try neighbourMAC(of: reused, in: b) == macA)

            let deleted = try bridgePlugin.run(
                "DEL", config: network.config(), containerID: "a", netns: a.path, ifname: "eth0", in: host)
            try #require(deleted.status == 0, "\(deleted.stdout)")
            a.destroy()

            var extra: [String: Any] = ["ips": [reused]]
            if runtimeMAC { extra["mac"] = "52:54:00:12:34:56" }
            let resultC = try add(network, c, id: "c", on: host, runtimeConfig: extra)
            let added = Date()
            try #require(BridgeTests.containerAddress(resultC, family: family) == reused)
            let macC = try #require(try c.link("eth0")?["address"] as? String)
            if runtimeMAC { #expect(macC == "52:54:00:12:34:56") }

            let reached = eventually(within: 2, since: added) { answers(b, reused) }
            let elapsed = Date().timeIntervalSince(added)
            #expect(reached, "B reaches C at \(reused) within 2 s of ADD (took \(elapsed) s)")
            #expect(try neighbourMAC(of: reused, in: b) == macC, "B's entry for \(reused) names C's MAC \(macC)")
            #expect(eventually(within: 2, since: added) { answers(host, reused) }, "the host reaches C at \(reused)")
        }
    }

    private func add(
        _ network: NetworkFixture, _ container: TestHost, id: String, on host: TestHost,
        runtimeConfig: [String: Any] = [:]
    ) throws -> [String: Any] {
        let config = runtimeConfig.isEmpty ? network.config() : network.config(["runtimeConfig": runtimeConfig])
        let output = try bridgePlugin.run(
            "ADD", config: config, containerID: id, netns: container.path, ifname: "eth0", in: host)
        try #require(output.status == 0, "ADD \(id) failed: \(output.stdout) \(output.stderr)")
        return output.object
    }
}
