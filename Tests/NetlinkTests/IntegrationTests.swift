import Foundation
import IPAddressing
import NetNS
import PierTestSupport
import Testing

@testable import Netlink

/// Every test works inside throwaway test hosts (never the root namespace) and checks each
/// change with `ip -j -d` / `bridge -j` in that host: an oracle that shares no code with the
/// module, so an operation that silently did nothing fails the test.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct NetlinkIntegrationTests {
    /// A session bound inside `host`, plus the namespace handle (keeps its fd open).
    private func open(_ host: TestHost) throws -> (NetworkNamespace, RouteNetlink) {
        let namespace = try NetworkNamespace.open(path: host.path)
        return (namespace, try RouteNetlink(namespace: namespace))
    }

    private func linkInfo(_ host: TestHost, _ name: String) throws -> [String: Any] {
        (try host.link(name)?["linkinfo"] as? [String: Any]) ?? [:]
    }

    private func flags(_ host: TestHost, _ name: String) throws -> [String] {
        (try host.link(name)?["flags"] as? [String]) ?? []
    }

    private func ip(_ text: String) throws -> IPAddress { try #require(IPAddress(text)) }
    private func prefix(_ text: String) throws -> IPPrefix { try #require(IPPrefix(text)) }
    private func mac(_ text: String) throws -> MACAddress { try #require(MACAddress(text)) }

    @Test func bridgeAndVethIntoAnotherHostWithPortOptions() throws {
        try withTestHosts(2) { hosts in
            let (a, b) = (hosts[0], hosts[1])
            let (_, netlink) = try open(a)
            let namespaceB = try NetworkNamespace.open(path: b.path)
            let tag = uniqueTag(6)
            let bridgeName = "br\(tag)"
            let hostSide = "veth\(tag)"

            try netlink.createBridge(name: bridgeName, mtu: 1400, mac: try mac("02:11:22:33:44:55"))
            let bridgeJSON = try #require(try a.link(bridgeName))
            #expect(try linkInfo(a, bridgeName)["info_kind"] as? String == "bridge")
            #expect(bridgeJSON["mtu"] as? Int == 1400)
            #expect(bridgeJSON["address"] as? String == "02:11:22:33:44:55")

            try netlink.createVeth(
                VethPair(
                    name: hostSide, peerName: "eth0", peerNamespace: .namespace(namespaceB), mtu: 1400,
                    peerMAC: try mac("02:aa:bb:cc:dd:01")))
            #expect(try linkInfo(a, hostSide)["info_kind"] as? String == "veth")
            let peerJSON = try #require(try b.link("eth0"), "the peer was not born in the second host")
            #expect(peerJSON["mtu"] as? Int == 1400)
            #expect(peerJSON["address"] as? String == "02:aa:bb:cc:dd:01")
            #expect(try a.link("eth0") == nil, "the peer must not appear in the creating namespace")

            // The module's own view agrees with the oracle.
            let bridge = try netlink.link(named: bridgeName)
            var veth = try netlink.link(named: hostSide)
            #expect(bridge.kind == .bridge && bridge.mtu == 1400)
            #expect(veth.kind == .veth && veth.linkNetnsID != nil)

            try netlink.setMaster(index: veth.index, bridge.index)
            #expect(try a.link(hostSide)?["master"] as? String == bridgeName)
            veth = try netlink.link(index: veth.index)
            #expect(veth.masterIndex == bridge.index)

            try netlink.setBridgePort(index: veth.index, hairpin: true, isolated: true)
            var port = try linkInfo(a, hostSide)["info_slave_data"] as? [String: Any] ?? [:]
            #expect(port["hairpin"] as? Bool == true)
            #expect(port["isolated"] as? Bool == true)
            #expect(try netlink.link(index: veth.index).bridgePort == BridgePortInfo(hairpin: true, isolated: true))
            try netlink.setBridgePort(index: veth.index, hairpin: false)
            port = try linkInfo(a, hostSide)["info_slave_data"] as? [String: Any] ?? [:]
            #expect(port["hairpin"] as? Bool == false)
            #expect(port["isolated"] as? Bool == true)

            try netlink.setLinkUp(index: bridge.index)
            try netlink.setLinkUp(index: veth.index)
            #expect(try flags(a, bridgeName).contains("UP"))
            #expect(try flags(a, hostSide).contains("UP"))
            #expect(try netlink.link(index: veth.index).isUp)
            try netlink.setLinkDown(index: veth.index)
            #expect(!(try flags(a, hostSide).contains("UP")))

            try netlink.setMaster(index: veth.index, nil)
            #expect(try a.link(hostSide)?["master"] == nil)

            // Deleting one end removes the pair, across namespaces.
            try netlink.deleteLink(index: veth.index)
            #expect(try a.link(hostSide) == nil)
            #expect(try b.link("eth0") == nil)
            try netlink.deleteLink(named: bridgeName)
            #expect(try a.link(bridgeName) == nil)
        }
    }

    @Test func addressesRoutesNeighboursAndPing() throws {
        try withTestHosts(2) { hosts in
            let (a, b) = (hosts[0], hosts[1])
            let (_, netA) = try open(a)
            let (namespaceB, netB) = try open(b)
            try netA.createVeth(VethPair(name: "a0", peerName: "b0", peerNamespace: .namespace(namespaceB)))
            let a0 = try netA.link(named: "a0").index
            let b0 = try netB.link(named: "b0").index

            try netA.addAddress(try prefix("10.77.0.1/24"), index: a0, options: AddressOptions(computeBroadcast: true))
            try netB.addAddress(try prefix("10.77.0.2/24"), index: b0)
            try netA.addAddress(try prefix("fd00:77::1/64"), index: a0, options: AddressOptions(noDAD: true))
            try netB.addAddress(try prefix("fd00:77::2/64"), index: b0, options: AddressOptions(noDAD: true))
            try netA.setLinkUp(index: a0)
            try netB.setLinkUp(index: b0)

            #expect(Set(try a.addresses(of: "a0")) == ["10.77.0.1/24", "fd00:77::1/64"])
            #expect(Set(try b.addresses(of: "b0")) == ["10.77.0.2/24", "fd00:77::2/64"])
            let infos = try a.ipJSON(["addr", "show", "dev", "a0"]).first?["addr_info"] as? [[String: Any]] ?? []
            let v6 = infos.first { $0["local"] as? String == "fd00:77::1" }
            #expect(v6?["nodad"] as? Bool == true)
            let v4 = infos.first { $0["local"] as? String == "10.77.0.1" }
            #expect(v4?["broadcast"] as? String == "10.77.0.255")
            let listed = try netA.addresses(index: a0)
            #expect(listed.contains { $0.prefix.description == "fd00:77::1/64" && $0.isNoDAD })
            #expect(listed.contains { $0.prefix.description == "10.77.0.1/24" })

            #expect(a.canPing("10.77.0.2"), "IPv4 across the veth configured by the module")
            #expect(a.canPing("fd00:77::2"), "IPv6 across the veth configured by the module")

            // Routes in B: via a gateway with a metric, then replaced with another gateway.
            try netB.addRoute(
                Route(
                    destination: try prefix("10.88.0.0/24"), gateway: try ip("10.77.0.1"), outputIndex: b0, metric: 50))
            var routes = try b.ipJSON(["route", "show", "10.88.0.0/24"])
            #expect(routes.first?["gateway"] as? String == "10.77.0.1")
            #expect(routes.first?["metric"] as? Int == 50)
            #expect(routes.first?["dev"] as? String == "b0")
            #expect(throws: NetlinkError.self) {
                try netB.addRoute(
                    Route(
                        destination: try prefix("10.88.0.0/24"), gateway: try ip("10.77.0.1"), outputIndex: b0,
                        metric: 50))
            }
            try netB.replaceRoute(
                Route(
                    destination: try prefix("10.88.0.0/24"), gateway: try ip("10.77.0.3"), outputIndex: b0, metric: 50))
            routes = try b.ipJSON(["route", "show", "10.88.0.0/24"])
            #expect(routes.count == 1)
            #expect(routes.first?["gateway"] as? String == "10.77.0.3")

            // A default route in another table through a gateway outside every subnet: onlink.
            let onLinkDefault = Route.defaultRoute(via: try ip("10.99.9.1"), outputIndex: b0, table: 100, metric: 5)
            var onLink = onLinkDefault
            onLink.onLink = true
            try netB.addRoute(onLink)
            let table100 = try b.ipJSON(["route", "show", "table", "100"])
            #expect(table100.first?["dst"] as? String == "default")
            #expect(table100.first?["gateway"] as? String == "10.99.9.1")
            #expect((table100.first?["flags"] as? [String])?.contains("onlink") == true)
            let listedRoutes = try netB.routes(family: .v4, table: 100)
            #expect(listedRoutes.contains { $0.isDefault && $0.onLink && $0.gateway == IPAddress("10.99.9.1") })

            // IPv6 route with an MTU metric; traffic follows it (B reaches A's extra address).
            try netA.addAddress(try prefix("fd00:88::1/128"), index: a0, options: AddressOptions(noDAD: true))
            try netB.addRoute(
                Route(
                    destination: try prefix("fd00:88::/64"), gateway: try ip("fd00:77::1"), outputIndex: b0,
                    metric: 10, mtu: 1300))
            let v6Routes = try b.ipJSON(["-6", "route", "show", "fd00:88::/64"])
            #expect(v6Routes.first?["gateway"] as? String == "fd00:77::1")
            let metrics = v6Routes.first?["metrics"] as? [[String: Any]] ?? []
            #expect(metrics.contains { $0["mtu"] as? Int == 1300 })
            #expect(b.canPing("fd00:88::1"))

            try netB.deleteRoute(onLink)
            #expect(try b.ipJSON(["route", "show", "table", "100"]).isEmpty)
            do {
                try netB.deleteRoute(onLink)
                Issue.record("deleting a missing route succeeded")
            } catch let error as NetlinkError {
                #expect(error.isNotFound)
            }

            // Permanent neighbour entries.
            let neighbor = Neighbor(index: a0, address: try ip("10.77.0.50"), mac: try mac("02:00:00:00:00:50"))
            try netA.addNeighbor(neighbor)
            var neighbours = try a.ipJSON(["neigh", "show", "dev", "a0", "to", "10.77.0.50"])
            #expect(neighbours.first?["lladdr"] as? String == "02:00:00:00:00:50")
            #expect((neighbours.first?["state"] as? [String])?.contains("PERMANENT") == true)
            do {
                try netA.addNeighbor(neighbor)
                Issue.record("adding an existing neighbour succeeded")
            } catch let error as NetlinkError {
                #expect(error.isExists)
            }
            var moved = neighbor
            moved.mac = try mac("02:00:00:00:00:51")
            try netA.replaceNeighbor(moved)
            neighbours = try a.ipJSON(["neigh", "show", "dev", "a0", "to", "10.77.0.50"])
            #expect(neighbours.first?["lladdr"] as? String == "02:00:00:00:00:51")
            #expect(try netA.neighbors(family: .v4, index: a0).contains { $0 == moved })
            try netA.deleteNeighbor(moved)
            #expect(try a.ipJSON(["neigh", "show", "dev", "a0", "to", "10.77.0.50"]).isEmpty)
            do {
                try netA.deleteNeighbor(moved)
                Issue.record("deleting a missing neighbour succeeded")
            } catch let error as NetlinkError {
                #expect(error.isNotFound)
            }

            // Address removal, and its not-found error.
            try netA.deleteAddress(try prefix("10.77.0.1/24"), index: a0)
            #expect(!(try a.addresses(of: "a0")).contains("10.77.0.1/24"))
            #expect(!a.canPing("10.77.0.2", timeoutSeconds: 1))
            do {
                try netA.deleteAddress(try prefix("10.77.0.1/24"), index: a0)
                Issue.record("deleting a missing address succeeded")
            } catch let error as NetlinkError {
                #expect(error.isNotFound)
            }
        }
    }

    @Test func vxlanWithStaticFDB() throws {
        try withTestHosts(1) { hosts in
            let a = hosts[0]
            let (_, netlink) = try open(a)
            try netlink.createVeth(VethPair(name: "u0", peerName: "u1"))
            let underlay = try netlink.link(named: "u0").index
            try netlink.addAddress(try prefix("10.99.0.1/24"), index: underlay)
            try netlink.setLinkUp(index: underlay)

            try netlink.createVxlan(
                VxlanDevice(
                    name: "vx42", vni: 42, local: try ip("10.99.0.1"), port: 4789, underlayIndex: underlay,
                    mtu: 1450))
            let info = try linkInfo(a, "vx42")
            let data = info["info_data"] as? [String: Any] ?? [:]
            #expect(info["info_kind"] as? String == "vxlan")
            #expect(data["id"] as? Int == 42)
            #expect(data["local"] as? String == "10.99.0.1")
            #expect(data["port"] as? Int == 4789)
            #expect(data["link"] as? String == "u0")
            #expect(data["learning"] as? Bool == false)
            #expect(data["proxy"] as? Bool == true)
            #expect(try a.link("vx42")?["mtu"] as? Int == 1450)
            let vxlan = try netlink.link(named: "vx42")
            #expect(
                vxlan.vxlan
                    == VxlanInfo(
                        vni: 42, local: try ip("10.99.0.1"), port: 4789, underlayIndex: underlay, learning: false,
                        proxy: true))

            // A remote endpoint's MAC behind a remote VTEP, plus head-end replication entries.
            let endpoint = FDBEntry(
                index: vxlan.index, mac: try mac("02:42:0a:00:00:07"), destination: try ip("10.99.0.2"))
            try netlink.addFDB(endpoint)
            let zero = try mac("00:00:00:00:00:00")
            try netlink.appendFDB(FDBEntry(index: vxlan.index, mac: zero, destination: try ip("10.99.0.2")))
            try netlink.appendFDB(FDBEntry(index: vxlan.index, mac: zero, destination: try ip("10.99.0.3")))
            var fdb = try a.bridgeJSON(["fdb", "show", "dev", "vx42"])
            let endpointJSON = fdb.first { $0["mac"] as? String == "02:42:0a:00:00:07" }
            #expect(endpointJSON?["dst"] as? String == "10.99.0.2")
            #expect(endpointJSON?["state"] as? String == "permanent")
            #expect((endpointJSON?["flags"] as? [String])?.contains("self") == true)
            let flood = fdb.filter { $0["mac"] as? String == "00:00:00:00:00:00" }.compactMap { $0["dst"] as? String }
            #expect(Set(flood) == ["10.99.0.2", "10.99.0.3"])
            let listed = try netlink.fdbEntries(index: vxlan.index)
            #expect(listed.contains { $0.mac == endpoint.mac && $0.destination == endpoint.destination })

            // Deleting one remote of the all-zero MAC leaves the other.
            try netlink.deleteFDB(FDBEntry(index: vxlan.index, mac: zero, destination: try ip("10.99.0.3")))
            try netlink.deleteFDB(endpoint)
            fdb = try a.bridgeJSON(["fdb", "show", "dev", "vx42"])
            #expect(!fdb.contains { $0["mac"] as? String == "02:42:0a:00:00:07" })
            #expect(
                fdb.filter { $0["mac"] as? String == "00:00:00:00:00:00" }.compactMap { $0["dst"] as? String } == [
                    "10.99.0.2"
                ])

            // Enslaved to a bridge, as the overlay does.
            try netlink.createBridge(name: "ov0")
            try netlink.setMaster(index: vxlan.index, try netlink.link(named: "ov0").index)
            #expect(try a.link("vx42")?["master"] as? String == "ov0")
        }
    }

    @Test func macvlanBornInAnotherHostAndRenamed() throws {
        try withTestHosts(2) { hosts in
            let (a, b) = (hosts[0], hosts[1])
            let (_, netA) = try open(a)
            let (namespaceB, netB) = try open(b)
            try netA.createVeth(VethPair(name: "p0", peerName: "p1"))
            let parent = try netA.link(named: "p0").index
            let temporary = "mv\(uniqueTag(8))"
            try netA.createMacvlan(
                name: temporary, parentIndex: parent, mode: .bridge, mtu: 1400, mac: try mac("02:00:00:00:aa:01"),
                namespace: .namespace(namespaceB))
            #expect(try a.link(temporary) == nil)
            let created = try netB.link(named: temporary)
            #expect(created.kind == .macvlan && created.macvlanMode == .bridge)
            try netB.rename(index: created.index, to: "eth0")
            #expect(try b.link(temporary) == nil)
            let json = try #require(try b.link("eth0"))
            #expect(json["mtu"] as? Int == 1400)
            #expect(json["address"] as? String == "02:00:00:00:aa:01")
            let info = json["linkinfo"] as? [String: Any] ?? [:]
            #expect(info["info_kind"] as? String == "macvlan")
            #expect((info["info_data"] as? [String: Any])?["mode"] as? String == "bridge")

            // Another mode, created in place.
            try netA.createMacvlan(name: "mvp", parentIndex: parent, mode: .private)
            #expect((try linkInfo(a, "mvp")["info_data"] as? [String: Any])?["mode"] as? String == "private")
        }
    }

    @Test func linkAttributesMoveAndDelete() throws {
        try withTestHosts(2) { hosts in
            let (a, b) = (hosts[0], hosts[1])
            let (namespaceA, netA) = try open(a)
            let (namespaceB, netB) = try open(b)
            try netA.createVeth(VethPair(name: "x0", peerName: "x1"))
            let x0 = try netA.link(named: "x0").index

            try netA.setMTU(index: x0, 1234)
            #expect(try a.link("x0")?["mtu"] as? Int == 1234)
            try netA.setMAC(index: x0, try mac("02:12:34:56:78:9a"))
            #expect(try a.link("x0")?["address"] as? String == "02:12:34:56:78:9a")
            try netA.setAlias(index: x0, "pier test")
            #expect(try a.link("x0")?["ifalias"] as? String == "pier test")
            try netA.setPromiscuous(index: x0, true)
            #expect(try flags(a, "x0").contains("PROMISC"))
            #expect(try netA.link(index: x0).isPromiscuous)
            try netA.setPromiscuous(index: x0, false)
            #expect(!(try flags(a, "x0").contains("PROMISC")))

            try netA.rename(index: x0, to: "y0")
            #expect(try a.link("x0") == nil)
            #expect(try a.link("y0") != nil)

            // Move to B, check it left A, then bring it back.
            try netA.moveLink(index: x0, to: .namespace(namespaceB))
            #expect(try a.link("y0") == nil)
            #expect(try b.link("y0") != nil)
            #expect(try netB.links().contains { $0.name == "y0" })
            #expect(!(try netA.links().contains { $0.name == "y0" }))
            let inB = try netB.link(named: "y0").index
            try netB.moveLink(index: inB, to: .namespace(namespaceA))
            #expect(try a.link("y0") != nil)
            #expect(try b.link("y0") == nil)

            // Typed errors for the cases plugins branch on.
            do {
                _ = try netA.link(named: "nope\(uniqueTag(4))")
                Issue.record("a missing link was found")
            } catch let error as NetlinkError {
                #expect(error.isNotFound)
                #expect(error.operation.hasPrefix("get link nope"))
            }
            do {
                try netA.createVeth(VethPair(name: "y0", peerName: "z1"))
                Issue.record("a duplicate name was accepted")
            } catch let error as NetlinkError {
                #expect(error.isExists)
            }

            try netA.deleteLink(named: "y0")
            #expect(try a.link("y0") == nil)
            #expect(try a.link("x1") == nil)
            do {
                try netA.deleteLink(named: "y0")
                Issue.record("deleting a missing link succeeded")
            } catch let error as NetlinkError {
                #expect(error.isNotFound)
            }
        }
    }

    @Test(.disabled("this kernel has no bridge VLAN filtering or 802.1Q; VLAN requests are checked byte for byte"))
    func bridgeVLANs() throws {
        try withTestHosts(1) { hosts in
            let (_, netlink) = try open(hosts[0])
            try netlink.createBridge(name: "brv")
            let bridge = try netlink.link(named: "brv").index
            try netlink.setBridgeVLANFiltering(index: bridge, true)
            try netlink.createVeth(VethPair(name: "v0", peerName: "v1"))
            let port = try netlink.link(named: "v0").index
            try netlink.setMaster(index: port, bridge)
            try netlink.addBridgeVLAN(index: port, BridgeVLAN(vid: 100, pvid: true, untagged: true))
            try netlink.addBridgeVLAN(index: port, BridgeVLAN(range: 200...210))
            let vlans = try hosts[0].bridgeJSON(["vlan", "show", "dev", "v0"])
            #expect(!vlans.isEmpty)
        }
    }
}
