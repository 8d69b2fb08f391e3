import Foundation
import PierTestSupport
import Testing

/// The bridge plugin, executed as a runtime would: inside a test host (the "host" namespace),
/// attaching containers that are further test hosts, with Pier's `ipam` as the delegate.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct BridgeTests {
    let bridgePlugin = PluginRunner("bridge")

    /// A dual-stack bridge network with a short unique bridge name.
    static func network(
        subnet4: String = "10.77.0.0/24", subnet6: String = "fd77::/64", _ extra: [String: Any] = [:]
    ) -> NetworkFixture {
        var plugin: [String: Any] = [
            "type": "bridge", "bridge": "br-\(uniqueTag(6))", "isGateway": true, "isDefaultGateway": true,
            "ipMasq": true,
            "ipam": ["type": "ipam", "ranges": [[["subnet": subnet4]], [["subnet": subnet6]]]],
        ]
        for (key, value) in extra { plugin[key] = value }
        return NetworkFixture(plugin: plugin)
    }

    func add(_ network: NetworkFixture, _ container: TestHost, on host: TestHost, id: String? = nil) throws -> [String:
        Any]
    {
        let output = try bridgePlugin.run(
            "ADD", config: network.config(), containerID: id ?? container.name, netns: container.path, ifname: "eth0",
            in: host)
        try #require(output.status == 0, "ADD failed: \(output.stdout) \(output.stderr)")
        return output.object
    }

    func delete(_ network: NetworkFixture, _ container: TestHost?, id: String, on host: TestHost) throws -> PluginOutput
    {
        try bridgePlugin.run(
            "DEL", config: network.config(), containerID: id, netns: container?.path ?? "", ifname: "eth0", in: host)
    }

    static func containerAddress(_ result: [String: Any], family: String) -> String? {
        let ips = result["ips"] as? [[String: Any]] ?? []
        let addresses = ips.compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
        return addresses.first { family == "6" ? $0.contains(":") : !$0.contains(":") }
    }

    @Test func twoContainersReachEachOtherAndTheGatewayOverIPv4AndIPv6() throws {
        let network = Self.network()
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let r1 = try add(network, c1, on: host)
            let r2 = try add(network, c2, on: host)
            let bridge = try #require(network.plugin["bridge"] as? String)

            // The result names bridge, host veth and container interface, in that order.
            let interfaces = try #require(r1["interfaces"] as? [[String: Any]])
            #expect(interfaces.map { $0["name"] as? String } == [bridge, interfaces[1]["name"] as? String, "eth0"])
            #expect(interfaces[2]["sandbox"] as? String == c1.path)
            // The kernel agrees: a bridge with the gateway addresses and the host veth as a port.
            let hostVeth = try #require(interfaces[1]["name"] as? String)
            #expect(try host.link(hostVeth)?["master"] as? String == bridge)
            // A port only carries frames: no link-local address of its own, so no IPv6 routes
            // but the multicast one every IPv6 link has.
            #expect(try host.link(hostVeth)?["inet6_addr_gen_mode"] as? String == "none")
            #expect(try host.addresses(of: hostVeth, includeLinkLocal: true).isEmpty)
            let portRoutes = try host.ipJSON(["-6", "route", "show", "table", "all", "dev", hostVeth])
            #expect(portRoutes.allSatisfy { $0["type"] as? String == "multicast" })
            #expect(Set(try host.addresses(of: bridge)) == ["10.77.0.1/24", "fd77::1/64"])
            let a1 = try #require(Self.containerAddress(r1, family: "4"))
            #expect(try c1.addresses(of: "eth0").contains("\(a1)/24"))
            // An IPv6 network keeps the container's link-local address.
            #expect(try c1.addresses(of: "eth0", includeLinkLocal: true).contains { $0.hasPrefix("fe80:") })

            let a2v4 = try #require(Self.containerAddress(r2, family: "4"))
            let a2v6 = try #require(Self.containerAddress(r2, family: "6"))
            #expect(c1.canPing(a2v4))
            #expect(c1.canPing(a2v6))
            #expect(c2.canPing("10.77.0.1"))
            #expect(c2.canPing("fd77::1"))
            // The default route points at the gateway.
            let routes = try c1.ipJSON(["route", "show", "default"])
            #expect(routes.first?["gateway"] as? String == "10.77.0.1")

            #expect(try delete(network, c1, id: c1.name, on: host).status == 0)
            #expect(try delete(network, c2, id: c2.name, on: host).status == 0)
            #expect(try host.link(hostVeth) == nil)
            #expect(network.leases().isEmpty)
        }
    }

    /// An IPv4-only network with our gateway: the container interface makes no IPv6 link-local
    /// address (no DAD, router solicitations or MLD reports flooded to every port), IPv4 works,
    /// and a bridge without the gateway (`isGateway` off) leaves IPv6 to whoever serves the link.
    @Test func anIPv4OnlyNetworkLeavesNoIPv6ChatterOnTheBridge() throws {
        var plugin = Self.network().plugin
        plugin["ipam"] = ["type": "ipam", "ranges": [[["subnet": "10.79.0.0/24"]]]]
        let network = NetworkFixture(plugin: plugin)
        defer { network.cleanUp() }
        var l2Plugin = plugin
        l2Plugin["bridge"] = "br-\(uniqueTag(6))"
        l2Plugin["isGateway"] = false
        l2Plugin["isDefaultGateway"] = false
        l2Plugin["ipam"] = ["type": "ipam", "ranges": [[["subnet": "10.80.0.0/24"]]]]
        let l2Network = NetworkFixture(plugin: l2Plugin)
        defer { l2Network.cleanUp() }
        try withTestHosts(4) { hosts in
            let (host, c1, c2, c3) = (hosts[0], hosts[1], hosts[2], hosts[3])
            _ = try add(network, c1, on: host)
            let r2 = try add(network, c2, on: host)
            #expect(try c1.link("eth0")?["inet6_addr_gen_mode"] as? String == "none")
            #expect(try c1.addresses(of: "eth0", includeLinkLocal: true).allSatisfy { !$0.contains(":") })
            #expect(c1.canPing(try #require(Self.containerAddress(r2, family: "4"))))
            #expect(c1.canPing("10.79.0.1"))

            _ = try add(l2Network, c3, on: host)
            #expect(try c3.link("eth0")?["inet6_addr_gen_mode"] as? String != "none")

            for (net, container) in [(network, c1), (network, c2), (l2Network, c3)] {
                #expect(try delete(net, container, id: container.name, on: host).status == 0)
            }
        }
    }

    /// Settings go over netlink where the kernel allows (arp_notify) and IPv6's are read from
    /// the link before any /proc/sys write: a container netns that starts with IPv6 disabled
    /// still gets its IPv6 address, and the host's forwarding is switched on.
    @Test func aContainerNetnsWithIPv6DisabledGetsItsAddressesAndTheKernelSettings() throws {
        let network = Self.network(subnet4: "10.77.9.0/24", subnet6: "fd77:9::/64")
        defer { network.cleanUp() }
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            for key in ["all", "default", "lo"] {
                try c1.mustRun(["sysctl", "-qw", "net.ipv6.conf.\(key).disable_ipv6=1"])
            }
            try host.mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=0"])
            let result = try add(network, c1, on: host)
            let v6 = try #require(Self.containerAddress(result, family: "6"))
            #expect(try c1.addresses(of: "eth0").contains("\(v6)/64"))
            #expect(try c1.mustRun(["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]).stdout.hasPrefix("1"))
            #expect(try c1.mustRun(["cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6"]).stdout.hasPrefix("0"))
            #expect(try host.mustRun(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.hasPrefix("1"))
            #expect(c1.canPing("fd77:9::1"))
            _ = try delete(network, c1, id: c1.name, on: host)
        }
    }

    /// The bridge's MAC is pinned by the network's first ADD, so a port with a lower MAC does not
    /// take it over (MAC flapping); later ADDs leave it alone, since every MAC write, even of the
    /// same value, flushes the bridge's ARP cache.
    @Test func theBridgeMACIsPinnedOnceAndLaterADDsKeepTheNeighbourCache() throws {
        let network = Self.network(subnet4: "10.77.10.0/24", subnet6: "fd77:10::/64")
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            _ = try add(network, c1, on: host)
            let bridge = try #require(network.plugin["bridge"] as? String)
            let pinned = try #require(try host.link(bridge)?["address"] as? String)
            try host.mustRun(["ip", "link", "add", "lowmac", "address", "00:00:00:00:00:01", "type", "veth"])
            try host.mustRun(["ip", "link", "set", "lowmac", "master", bridge, "up"])
            try host.mustRun([
                "ip", "neigh", "replace", "10.77.10.200", "lladdr", "02:00:00:00:00:c8", "dev", bridge, "nud",
                "reachable",
            ])
            _ = try add(network, c2, on: host)
            #expect(try host.link(bridge)?["address"] as? String == pinned)
            let neighbours = try host.ipJSON(["neigh", "show", "dev", bridge])
            #expect(neighbours.contains { $0["dst"] as? String == "10.77.10.200" }, "ARP cache flushed: \(neighbours)")
            try host.mustRun(["ip", "link", "del", "lowmac"])
            _ = try delete(network, c1, id: c1.name, on: host)
            _ = try delete(network, c2, id: c2.name, on: host)
        }
    }

    @Test func delWorksWhenTheNetnsIsGoneOrEmptyAndRepeats() throws {
        let network = Self.network(subnet4: "10.78.0.0/24", subnet6: "fd78::/64")
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let r1 = try add(network, c1, on: host)
            _ = try add(network, c2, on: host)
            let veth1 = try #require((r1["interfaces"] as? [[String: Any]])?[1]["name"] as? String)
            #expect(network.leases().count == 4)

            // Container 1's netns disappears before DEL; container 2 is deleted with no CNI_NETNS.
            c1.destroy()
            #expect(try delete(network, c1, id: c1.name, on: host).status == 0)
            #expect(try delete(network, nil, id: c2.name, on: host).status == 0)
            #expect(try host.link(veth1) == nil)
            #expect(network.leases().isEmpty)
            let leftovers = try host.linkNames().filter { $0.hasPrefix("veth") }
            #expect(leftovers.isEmpty, "veths left: \(leftovers)")
            // A netns path that is only a file (a runtime killed before mounting it) is gone too.
            let bare = NSTemporaryDirectory() + "pier-t-bare-\(uniqueTag())"
            _ = FileManager.default.createFile(atPath: bare, contents: nil)
            defer { try? FileManager.default.removeItem(atPath: bare) }
            let onBareFile = try bridgePlugin.run(
                "DEL", config: network.config(), containerID: c1.name, netns: bare, ifname: "eth0", in: host)
            #expect(onBareFile.status == 0, "\(onBareFile.stdout)")
            // And again: DEL of something already gone succeeds.
            #expect(try delete(network, c1, id: c1.name, on: host).status == 0)
            #expect(try delete(network, nil, id: c2.name, on: host).status == 0)
        }
    }
}
