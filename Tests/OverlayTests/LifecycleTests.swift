import Foundation
import PierTestSupport
import Testing

/// Verbs beyond ADD: DEL (idempotent, netns gone, empty CNI_NETNS), CHECK, GC, STATUS; VNI
/// isolation; an etcd outage during ADD.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct LifecycleTests {
    @Test func twoNetworksWithDifferentVNIsAreIsolated() throws {
        let cluster = try OverlayCluster(hosts: 2, store: .file)
        defer { cluster.tearDown() }
        let vni = Int.random(in: 4000...4498)
        let red = OverlayNetwork(cluster: cluster, vni: vni, subnetIndex: 10)
        let blue = OverlayNetwork(cluster: cluster, vni: vni + 1, subnetIndex: 11)
        for network in [red, blue] {
            for index in 0..<2 { try cluster.startAgent(host: index, network: network.name) }
        }
        let red0 = try red.add("red0-\(uniqueTag(4))", host: 0)
        let blue0 = try blue.add("blue0-\(uniqueTag(4))", host: 0)
        let red1Key = "red1-\(uniqueTag(4))"
        let blue1Key = "blue1-\(uniqueTag(4))"
        _ = try red.add(red1Key, host: 1)
        _ = try blue.add(blue1Key, host: 1)
        let red1 = try cluster.container(red1Key)
        let blue1 = try cluster.container(blue1Key)
        #expect(eventually(within: 5) { red1.canPing(red0, timeoutSeconds: 1) })
        let blueReachable = eventually(within: 5) { blue1.canPing(blue0, timeoutSeconds: 1) }
        let blueEntries = try (0..<2).map { try blue.kernelEntries(host: $0) }
        let links = try cluster.hosts[0].ipJSON(["link", "show", "dev", blue.vxlanName])
        #expect(blueReachable, "\(blueEntries) \(links) \(cluster.agentLog(host: 0, network: blue.name))")
        #expect(!red1.canPing(blue0, timeoutSeconds: 1))
        #expect(!blue1.canPing(red0, timeoutSeconds: 1))
        // Each VXLAN device knows only its own network's remote endpoint.
        #expect(try red.kernelEntries(host: 1).neighbors.keys.sorted() == [red0])
        #expect(try blue.kernelEntries(host: 1).neighbors.keys.sorted() == [blue0])
    }

    @Test func delIsIdempotentAndWithdrawsTheEndpoint() throws {
        let cluster = try OverlayCluster(hosts: 2, store: .file)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        try cluster.startAgent(host: 1, network: network.name)
        _ = try network.add("peer-\(uniqueTag(4))", host: 1)
        let key = "gone-\(uniqueTag(4))"
        let address = try network.add(key, host: 0)
        #expect(try eventually(within: 2) { try network.kernelEntries(host: 1).neighbors[address] != nil })

        // CHECK passes on a healthy attachment.
        let check = try network.run("CHECK", host: 0, container: cluster.containers[key], containerID: key)
        #expect(check.status == 0, "\(check.stdout) \(check.stderr)")

        // The container's netns goes first, then DEL twice, then DEL with an empty CNI_NETNS.
        cluster.containers[key]?.destroy()
        try network.delete(key, host: 0)
        try network.delete(key, host: 0)
        let empty = try PluginRunner("vxlan-overlay").run(
            "DEL", config: network.config(host: 0), containerID: key, netns: "", ifname: "eth0", in: cluster.hosts[0])
        #expect(empty.status == 0, "\(empty.stdout)")
        #expect(try eventually(within: 2) { try network.kernelEntries(host: 1).neighbors[address] == nil })
        let hostVeths = try cluster.hosts[0].linkNames().filter { $0.hasPrefix("veth") }
        #expect(hostVeths.isEmpty, "\(hostVeths)")
        // The lease is gone from the store (IPAM DEL ran through the cluster store).
        let lease = "\(cluster.storeDirectory)/data/pier%2Fipam%2F\(network.name)%2Fleases%2F\(address)"
        #expect(!FileManager.default.fileExists(atPath: lease))
        let endpoints = try FileManager.default.contentsOfDirectory(atPath: cluster.storeDirectory + "/data")
            .filter { $0.contains("endpoints") && $0.contains(key) }
        #expect(endpoints.isEmpty)
    }

    @Test func gcWithdrawsWhatIsNotValidAndStatusReportsTheStore() throws {
        let cluster = try OverlayCluster(hosts: 1, store: .etcd)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        let keep = "keep-\(uniqueTag(4))"
        let drop = "drop-\(uniqueTag(4))"
        _ = try network.add(keep, host: 0)
        _ = try network.add(drop, host: 0)
        let gcConfig = network.config(
            host: 0, ["cni.dev/valid-attachments": [["containerID": keep, "ifname": "eth0"]]])
        let gc = try network.run("GC", host: 0, config: gcConfig)
        #expect(gc.status == 0, "\(gc.stdout) \(gc.stderr)")
        let keepCheck = try network.run("CHECK", host: 0, container: cluster.containers[keep], containerID: keep)
        #expect(keepCheck.status == 0, "\(keepCheck.stdout)")
        let dropCheck = try network.run("CHECK", host: 0, container: cluster.containers[drop], containerID: drop)
        #expect(dropCheck.status != 0)
        #expect(try cluster.containers[drop]?.linkNames().contains("eth0") == false)

        let status = try network.run("STATUS", host: 0)
        #expect(status.status == 0, "\(status.stdout)")
        cluster.etcd?.stop()
        let down = try network.run("STATUS", host: 0)
        #expect(down.errorCode == 50)
        #expect((down.object["details"] as? String ?? "").contains("etcd"), "\(down.stdout)")
    }

    @Test func etcdDownDuringAddIsCode11AndNothingIsHalfDone() throws {
        let cluster = try OverlayCluster(hosts: 2, store: .etcd)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        try cluster.startAgent(host: 0, network: network.name)
        let first = try network.add("first-\(uniqueTag(4))", host: 0)

        cluster.etcd?.stop()
        let key = "during-\(uniqueTag(4))"
        let container = try cluster.container(key)
        let failed = try network.run("ADD", host: 1, container: container, containerID: key)
        #expect(failed.errorCode == 11, "\(failed.stdout)")
        #expect((failed.object["details"] as? String ?? "").contains("refused"), "\(failed.stdout)")
        #expect(try container.linkNames() == ["lo"])
        #expect(try cluster.hosts[1].linkNames().filter { $0.hasPrefix("veth") }.isEmpty)

        try cluster.etcd?.start()
        let retried = try network.add(key, host: 1)
        #expect(retried != first)
        #expect(eventually(within: 3) { container.canPing(first, timeoutSeconds: 1) })
    }

    @Test func defaultGatewayOnEveryHostAndMasqueradeToTheUnderlay() throws {
        let cluster = try OverlayCluster(hosts: 2, store: .file)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster, extra: ["isDefaultGateway": true, "ipMasq": true])
        for index in 0..<2 { try cluster.startAgent(host: index, network: network.name) }
        let aKey = "gwa-\(uniqueTag(4))"
        let bKey = "gwb-\(uniqueTag(4))"
        _ = try network.add(aKey, host: 0)
        let b = try network.add(bKey, host: 1)
        let a = try cluster.container(aKey)
        let gateway = "\(network.subnet).1"
        // Each host's bridge holds the gateway; containers on both hosts still reach each other.
        for index in 0..<2 {
            #expect(try cluster.hosts[index].addresses(of: network.bridgeName) == ["\(gateway)/24"])
        }
        #expect(a.canPing(gateway))
        #expect(eventually(within: 3) { a.canPing(b, timeoutSeconds: 1) })
        // The switch has no route to the overlay subnet: an answer proves masquerade.
        #expect(a.canPing("\(cluster.underlayPrefix).254"))
    }

    /// As with the bridge: on an IPv4-only network whose gateway is ours (`isGateway`), the
    /// container interface makes no IPv6 link-local address, whose DAD, router solicitations
    /// and MLD reports would reach every port and, through the VXLAN device, every host. IPv4
    /// still works; with `isGateway` off IPv6 stays on for whoever serves the link.
    @Test func anIPv4OnlyNetworkWithOurGatewayLeavesNoIPv6Chatter() throws {
        let cluster = try OverlayCluster(hosts: 1, store: .file)
        defer { cluster.tearDown() }
        let index = Int.random(in: 0...254)
        let vni = Int.random(in: 4500...4998)
        let gatewayed = OverlayNetwork(cluster: cluster, vni: vni, subnetIndex: index, extra: ["isGateway": true])
        let plain = OverlayNetwork(cluster: cluster, vni: vni + 1, subnetIndex: index + 1)
        let quietKey = "v4gw-\(uniqueTag(4))"
        let plainKey = "v4l2-\(uniqueTag(4))"
        _ = try gatewayed.add(quietKey, host: 0)
        _ = try plain.add(plainKey, host: 0)
        let quiet = try cluster.container(quietKey)
        #expect(try quiet.link("eth0")?["inet6_addr_gen_mode"] as? String == "none")
        #expect(try quiet.addresses(of: "eth0", includeLinkLocal: true).allSatisfy { !$0.contains(":") })
        #expect(quiet.canPing("\(gatewayed.subnet).1"))
        let other = try cluster.container(plainKey)
        #expect(try other.link("eth0")?["inet6_addr_gen_mode"] as? String != "none")
        try gatewayed.delete(quietKey, host: 0)
        try plain.delete(plainKey, host: 0)
    }
}
