import Foundation
import PierTestSupport
import Testing

/// The reference bridge plugin's option matrix, each on the real kernel.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct BridgeOptionsTests {
    let helper = BridgeTests()

    static func hostVeth(_ result: [String: Any]) -> String? {
        (result["interfaces"] as? [[String: Any]])?[1]["name"] as? String
    }

    @Test func hairpinAndPortIsolationAreSetOnTheHostPort() throws {
        let network = BridgeTests.network(
            subnet4: "10.86.0.0/24", subnet6: "fd86::/64", ["hairpinMode": true, "portIsolation": true])
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let r1 = try helper.add(network, c1, on: host)
            let r2 = try helper.add(network, c2, on: host)
            let port = try #require(Self.hostVeth(r1))
            let info = try #require(try host.link(port)?["linkinfo"] as? [String: Any])
            let slave = try #require(info["info_slave_data"] as? [String: Any])
            #expect(slave["hairpin"] as? Bool == true)
            #expect(slave["isolated"] as? Bool == true)
            // Two isolated ports cannot talk to each other; both still reach the gateway.
            let a2 = try #require(BridgeTests.containerAddress(r2, family: "4"))
            #expect(!c1.canPing(a2, timeoutSeconds: 1))
            #expect(c1.canPing("10.86.0.1"))
            _ = try helper.delete(network, c1, id: c1.name, on: host)
            _ = try helper.delete(network, c2, id: c2.name, on: host)
        }
    }

    @Test func promiscuousBridgeAndMTU() throws {
        let network = BridgeTests.network(
            subnet4: "10.87.1.0/24", subnet6: "fd87:1::/64", ["promiscMode": true, "mtu": 1400])
        defer { network.cleanUp() }
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            let r1 = try helper.add(network, c1, on: host)
            let bridge = try #require(network.plugin["bridge"] as? String)
            let bridgeLink = try #require(try host.link(bridge))
            #expect((bridgeLink["promiscuity"] as? Int ?? 0) > 0)
            #expect(bridgeLink["mtu"] as? Int == 1400)
            let port = try #require(Self.hostVeth(r1))
            #expect(try host.link(port)?["mtu"] as? Int == 1400)
            #expect(try c1.link("eth0")?["mtu"] as? Int == 1400)
            _ = try helper.delete(network, c1, id: c1.name, on: host)
        }
    }

    @Test func disableContainerInterfaceLeavesAnL2LinkDown() throws {
        let network = NetworkFixture(plugin: [
            "type": "bridge", "bridge": "br-\(uniqueTag(6))", "disableContainerInterface": true,
        ])
        defer { network.cleanUp() }
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            let result = try helper.add(network, c1, on: host)
            #expect((result["ips"] as? [Any] ?? []).isEmpty)
            let link = try #require(try c1.link("eth0"))
            #expect(!((link["flags"] as? [String]) ?? []).contains("UP"))
            #expect(try c1.addresses(of: "eth0").isEmpty)
            _ = try helper.delete(network, c1, id: c1.name, on: host)

            // With IPAM it is a contradiction: refused before anything changes.
            var withIPAM = network.plugin
            withIPAM["ipam"] = ["type": "ipam", "ranges": [[["subnet": "10.87.2.0/24"]]]]
            let contradictory = NetworkFixture(plugin: withIPAM)
            defer { contradictory.cleanUp() }
            let output = try PluginRunner("bridge").run(
                "ADD", config: contradictory.config(), containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 7)
        }
    }

    @Test func defaultGatewayRouteOnlyWithIsDefaultGateway() throws {
        let gateway = BridgeTests.network(subnet4: "10.87.3.0/24", subnet6: "fd87:3::/64")
        let plain = BridgeTests.network(subnet4: "10.87.4.0/24", subnet6: "fd87:4::/64")
        plain.plugin["isDefaultGateway"] = false
        defer {
            gateway.cleanUp()
            plain.cleanUp()
        }
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let r1 = try helper.add(gateway, c1, on: host)
            let r2 = try helper.add(plain, c2, on: host)
            let routes1 = (r1["routes"] as? [[String: Any]] ?? []).compactMap { $0["dst"] as? String }
            let routes2 = (r2["routes"] as? [[String: Any]] ?? []).compactMap { $0["dst"] as? String }
            #expect(Set(routes1) == ["0.0.0.0/0", "::/0"])
            #expect(routes2.isEmpty)
            #expect(try c1.ipJSON(["route", "show", "default"]).first?["gateway"] as? String == "10.87.3.1")
            #expect(try c1.ipJSON(["-6", "route", "show", "default"]).first?["gateway"] as? String == "fd87:3::1")
            #expect(try c2.ipJSON(["route", "show", "default"]).isEmpty)
            // isGateway alone still puts the gateway on the bridge.
            let bridge = try #require(plain.plugin["bridge"] as? String)
            #expect(try host.addresses(of: bridge).contains("10.87.4.1/24"))
            _ = try helper.delete(gateway, c1, id: c1.name, on: host)
            _ = try helper.delete(plain, c2, id: c2.name, on: host)
        }
    }

    @Test func forceAddressReplacesADifferentBridgeAddress() throws {
        let bridge = "br-\(uniqueTag(6))"
        let strict = BridgeTests.network(subnet4: "10.87.5.0/24", subnet6: "fd87:5::/64", ["bridge": bridge])
        let forced = BridgeTests.network(
            subnet4: "10.87.5.0/24", subnet6: "fd87:5::/64", ["bridge": bridge, "forceAddress": true])
        defer {
            strict.cleanUp()
            forced.cleanUp()
        }
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            try host.mustRun(["ip", "link", "add", bridge, "type", "bridge"])
            try host.mustRun(["ip", "addr", "add", "192.0.2.77/24", "dev", bridge])
            let refused = try PluginRunner("bridge").run(
                "ADD", config: strict.config(), containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
            #expect(refused.status != 0)
            #expect(refused.stdout.contains("already has an IP address different from"))
            // A failed ADD leaves neither its veth nor its lease.
            #expect(try host.linkNames().filter { $0.hasPrefix("veth") }.isEmpty)
            #expect(strict.leases().isEmpty)

            _ = try helper.add(forced, c1, on: host)
            let addresses = try host.addresses(of: bridge)
            #expect(addresses.contains("10.87.5.1/24"))
            #expect(!addresses.contains("192.0.2.77/24"))
            _ = try helper.delete(forced, c1, id: c1.name, on: host)
        }
    }

    @Test func macspoofchkDropsASpoofedSourceMAC() throws {
        let network = BridgeTests.network(subnet4: "10.87.6.0/24", subnet6: "fd87:6::/64", ["macspoofchk": true])
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            _ = try helper.add(network, c1, on: host)
            let r2 = try helper.add(network, c2, on: host)
            let a2 = try #require(BridgeTests.containerAddress(r2, family: "4"))
            #expect(c1.canPing(a2))
            // The spoof check is an element pair in `bridge pier`, tagged with the attachment.
            let sets = try host.nftJSON(["list", "table", "bridge", "pier"]).compactMap { $0["set"] as? [String: Any] }
            let allowed = try #require(sets.first { $0["name"] as? String == "spoofcheck_allowed" })
            #expect((allowed["elem"] as? [Any])?.count == 2)

            try c1.mustRun(["ip", "link", "set", "eth0", "address", "02:de:ad:be:ef:01"])
            try c1.mustRun(["ip", "neigh", "flush", "all"])
            try c2.mustRun(["ip", "neigh", "flush", "all"])
            #expect(!c1.canPing(a2, timeoutSeconds: 1))

            _ = try helper.delete(network, c1, id: c1.name, on: host)
            _ = try helper.delete(network, c2, id: c2.name, on: host)
            let after = try host.nftJSON(["list", "table", "bridge", "pier"]).compactMap { $0["set"] as? [String: Any] }
            #expect(after.allSatisfy { ($0["elem"] as? [Any] ?? []).isEmpty })
        }
    }

    @Test(
        .disabled(
            if: !kernelHasBridgeVLANFiltering,
            "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING): VLAN requests are tested byte for byte in NetlinkTests"
        ))
    func vlanAccessPortOnAKernelWithFiltering() throws {
        let network = BridgeTests.network(subnet4: "10.87.7.0/24", subnet6: "fd87:7::/64", ["vlan": 42])
        defer { network.cleanUp() }
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            let result = try helper.add(network, c1, on: host)
            let port = try #require(Self.hostVeth(result))
            let vlans = try host.bridgeJSON(["vlan", "show", "dev", port])
            let entries = (vlans.first?["vlans"] as? [[String: Any]]) ?? []
            #expect(entries.contains { $0["vlan"] as? Int == 42 })
            // The gateway lives on <bridge>.42, whose bridge-side end is a port in VLAN 42.
            let bridge = try #require(network.plugin["bridge"] as? String)
            #expect(try host.addresses(of: "\(bridge).42").contains("10.87.7.1/24"))
            #expect(c1.canPing("10.87.7.1"))
            _ = try helper.delete(network, c1, id: c1.name, on: host)
        }
    }

    @Test func vlanKeysOnThisKernelFailWithCode7BeforeAnythingChanges() throws {
        guard !kernelHasBridgeVLANFiltering else { return }
        for extra: [String: Any] in [["vlan": 42], ["vlanTrunk": [["id": 101]]]] {
            let network = BridgeTests.network(subnet4: "10.87.8.0/24", subnet6: "fd87:8::/64", extra)
            defer { network.cleanUp() }
            try withTestHosts(2) { hosts in
                let (host, c1) = (hosts[0], hosts[1])
                let output = try PluginRunner("bridge").run(
                    "ADD", config: network.config(), containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
                #expect(output.errorCode == 7)
                #expect(output.stdout.contains("VLAN filtering"))
                #expect(try host.linkNames() == ["lo"])
                #expect(try c1.linkNames() == ["lo"])
                #expect(network.leases().isEmpty)
            }
        }
    }
}

/// Whether this kernel can filter VLANs on a bridge, probed in a throwaway test host.
let kernelHasBridgeVLANFiltering: Bool = {
    guard isRoot, let probe = try? TestHost() else { return false }
    defer { probe.destroy() }
    let result = try? probe.run(["ip", "link", "add", "vlanprobe", "type", "bridge", "vlan_filtering", "1"])
    return result?.succeeded ?? false
}()
