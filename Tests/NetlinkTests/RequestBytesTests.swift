import IPAddressing
import Testing

@testable import Netlink

/// Runs `body` against a fake kernel that ACKs everything and returns the requests sent.
private func requests(_ body: (RouteNetlink) throws -> Void) throws -> [[UInt8]] {
    let transport = RecordingTransport(portID: 77)
    transport.responder = { request in [Wire.errorReply(to: request, error: 0, pid: 77)] }
    try body(RouteNetlink(transport: transport, firstSequence: 1))
    return transport.sent
}

private func expectBytes(
    _ actual: [[UInt8]], _ expected: [UInt8], sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(actual.count == 1, sourceLocation: sourceLocation)
    let got = actual.first ?? []
    #expect(Wire.hex(got) == Wire.hex(expected), sourceLocation: sourceLocation)
}

private func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else {
        Issue.record("bad test address \(text)")
        return .v4(0)
    }
    return address
}

private func prefix(_ text: String) -> IPPrefix {
    guard let prefix = IPPrefix(text) else {
        Issue.record("bad test prefix \(text)")
        return Route.anyPrefix(.v4)
    }
    return prefix
}

private func mac(_ text: String) -> MACAddress {
    guard let mac = MACAddress(text) else {
        Issue.record("bad test MAC \(text)")
        return MACAddress.randomLocal()
    }
    return mac
}

// uapi numbers used below (linux/rtnetlink.h, if_link.h, if_addr.h, neighbour.h, if_bridge.h):
// RTM_NEWLINK 16, RTM_DELLINK 17, RTM_GETLINK 18, RTM_SETLINK 19, RTM_NEWADDR 20,
// RTM_NEWROUTE 24, RTM_NEWNEIGH 28; IFLA_ADDRESS 1, IFLA_IFNAME 3, IFLA_MTU 4, IFLA_LINK 5,
// IFLA_MASTER 10, IFLA_PROTINFO 12, IFLA_LINKINFO 18, IFLA_AF_SPEC 26, IFLA_NET_NS_FD 28;
// IFLA_INFO_KIND 1, IFLA_INFO_DATA 2; VETH_INFO_PEER 1; IFLA_MACVLAN_MODE 1.
@Suite struct RequestBytesTests {
    @Test func createVethWithPeerInNamespace() throws {
        let sent = try requests { netlink in
            try netlink.createVeth(
                VethPair(
                    name: "veth1234abcd", peerName: "eth0", peerNamespace: .fileDescriptor(9), mtu: 1450,
                    peerMAC: mac("02:42:ac:11:00:02")))
        }
        let expected = Wire.message(
            type: 16, flags: Wire.createExcl, seq: 1,
            Wire.ifinfomsg(),
            Wire.attr(3, Wire.str("veth1234abcd")),
            Wire.attr(4, Wire.u32(1450)),
            Wire.nest(
                18,
                Wire.attr(1, Wire.str("veth")),
                Wire.nest(
                    2,
                    Wire.nest(
                        1,
                        Wire.ifinfomsg(),
                        Wire.attr(3, Wire.str("eth0")),
                        Wire.attr(4, Wire.u32(1450)),
                        Wire.attr(1, [0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
                        Wire.attr(28, Wire.u32(9))))))
        expectBytes(sent, expected)
    }

    @Test func createBridge() throws {
        let sent = try requests { try $0.createBridge(name: "pier0", mtu: 1500, mac: mac("02:00:00:00:00:01")) }
        let expected = Wire.message(
            type: 16, flags: Wire.createExcl, seq: 1,
            Wire.ifinfomsg(),
            Wire.attr(3, Wire.str("pier0")),
            Wire.attr(4, Wire.u32(1500)),
            Wire.attr(1, [2, 0, 0, 0, 0, 1]),
            Wire.nest(18, Wire.attr(1, Wire.str("bridge"))))
        expectBytes(sent, expected)
    }

    @Test func createVxlan() throws {
        // IFLA_VXLAN_ID 1, _LINK 3, _LOCAL 4, _LEARNING 7, _PROXY 11, _PORT 15 (big-endian).
        let sent = try requests { netlink in
            try netlink.createVxlan(
                VxlanDevice(
                    name: "vx42", vni: 42, local: ip("192.168.1.10"), port: 4789, underlayIndex: 3, mtu: 1450))
        }
        let expected = Wire.message(
            type: 16, flags: Wire.createExcl, seq: 1,
            Wire.ifinfomsg(),
            Wire.attr(3, Wire.str("vx42")),
            Wire.attr(4, Wire.u32(1450)),
            Wire.nest(
                18,
                Wire.attr(1, Wire.str("vxlan")),
                Wire.nest(
                    2,
                    Wire.attr(1, Wire.u32(42)),
                    Wire.attr(4, [192, 168, 1, 10]),
                    Wire.attr(3, Wire.u32(3)),
                    Wire.attr(15, [0x12, 0xb5]),
                    Wire.attr(7, [0]),
                    Wire.attr(11, [1]))))
        expectBytes(sent, expected)
    }

    @Test func createVxlanWithIPv6LocalLearningOnProxyOff() throws {
        // IFLA_VXLAN_LOCAL6 17 carries the 16 address bytes.
        let sent = try requests { netlink in
            try netlink.createVxlan(
                VxlanDevice(
                    name: "vx6", vni: 7, local: ip("fd00::a"), port: 8472, learning: true, proxy: false,
                    namespace: .fileDescriptor(5)))
        }
        let local: [UInt8] = [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [0x0a]
        let expected = Wire.message(
            type: 16, flags: Wire.createExcl, seq: 1,
            Wire.ifinfomsg(),
            Wire.attr(3, Wire.str("vx6")),
            Wire.attr(28, Wire.u32(5)),
            Wire.nest(
                18,
                Wire.attr(1, Wire.str("vxlan")),
                Wire.nest(
                    2,
                    Wire.attr(1, Wire.u32(7)),
                    Wire.attr(17, local),
                    Wire.attr(15, [0x21, 0x18]),
                    Wire.attr(7, [1]),
                    Wire.attr(11, [0]))))
        expectBytes(sent, expected)
    }

    @Test func createMacvlanInNamespace() throws {
        let sent = try requests { netlink in
            try netlink.createMacvlan(
                name: "mv-tmp1", parentIndex: 2, mode: .bridge, mtu: 1500, namespace: .fileDescriptor(7))
        }
        let expected = Wire.message(
            type: 16, flags: Wire.createExcl, seq: 1,
            Wire.ifinfomsg(),
            Wire.attr(3, Wire.str("mv-tmp1")),
            Wire.attr(4, Wire.u32(1500)),
            Wire.attr(5, Wire.u32(2)),
            Wire.attr(28, Wire.u32(7)),
            Wire.nest(18, Wire.attr(1, Wire.str("macvlan")), Wire.nest(2, Wire.attr(1, Wire.u32(4)))))
        expectBytes(sent, expected)
    }

    @Test func createMacvlanWithBroadcastQueueLength() throws {
        let sent = try requests { netlink in
            try netlink.createMacvlan(name: "mv-tmp2", parentIndex: 3, mode: .private, broadcastQueueLength: 2000)
        }
        // IFLA_MACVLAN_BC_QUEUE_LEN is 7, after the mode inside IFLA_INFO_DATA.
        let expected = Wire.message(
            type: 16, flags: Wire.createExcl, seq: 1,
            Wire.ifinfomsg(),
            Wire.attr(3, Wire.str("mv-tmp2")),
            Wire.attr(5, Wire.u32(3)),
            Wire.nest(
                18, Wire.attr(1, Wire.str("macvlan")),
                Wire.nest(2, Wire.attr(1, Wire.u32(1)), Wire.attr(7, Wire.u32(2000)))))
        expectBytes(sent, expected)
    }

    @Test func createDummy() throws {
        let sent = try requests { try $0.createDummy(name: "d0") }
        let expected = Wire.message(
            type: 16, flags: Wire.createExcl, seq: 1,
            Wire.ifinfomsg(), Wire.attr(3, Wire.str("d0")), Wire.nest(18, Wire.attr(1, Wire.str("dummy"))))
        expectBytes(sent, expected)
    }

    @Test func linkChanges() throws {
        let sent = try requests { netlink in
            try netlink.setLinkUp(index: 5)
            try netlink.setLinkDown(index: 5)
            try netlink.setMaster(index: 5, 3)
            try netlink.setMaster(index: 5, nil)
            try netlink.moveLink(index: 5, to: .fileDescriptor(11))
            try netlink.rename(index: 5, to: "eth1")
            try netlink.setPromiscuous(index: 5, true)
            try netlink.deleteLink(index: 5)
        }
        let expected: [[UInt8]] = [
            Wire.message(type: 16, flags: Wire.plain, seq: 1, Wire.ifinfomsg(index: 5, flags: 1, change: 1)),
            Wire.message(type: 16, flags: Wire.plain, seq: 2, Wire.ifinfomsg(index: 5, flags: 0, change: 1)),
            Wire.message(type: 16, flags: Wire.plain, seq: 3, Wire.ifinfomsg(index: 5), Wire.attr(10, Wire.u32(3))),
            Wire.message(type: 16, flags: Wire.plain, seq: 4, Wire.ifinfomsg(index: 5), Wire.attr(10, Wire.u32(0))),
            Wire.message(type: 16, flags: Wire.plain, seq: 5, Wire.ifinfomsg(index: 5), Wire.attr(28, Wire.u32(11))),
            Wire.message(type: 16, flags: Wire.plain, seq: 6, Wire.ifinfomsg(index: 5), Wire.attr(3, Wire.str("eth1"))),
            Wire.message(
                type: 16, flags: Wire.plain, seq: 7, Wire.ifinfomsg(index: 5, flags: 0x100, change: 0x100)),
            Wire.message(type: 17, flags: Wire.plain, seq: 8, Wire.ifinfomsg(index: 5)),
        ]
        #expect(sent.map(Wire.hex) == expected.map(Wire.hex))
    }

    @Test func addIPv4AddressWithNoDAD() throws {
        // IFA_ADDRESS 1, IFA_LOCAL 2, IFA_LABEL 3, IFA_BROADCAST 4; IFA_F_NODAD 0x02.
        let sent = try requests { netlink in
            try netlink.addAddress(
                prefix("10.22.0.5/24"), index: 4,
                options: AddressOptions(noDAD: true, label: "eth0:a", computeBroadcast: true))
        }
        let expected = Wire.message(
            type: 20, flags: Wire.createExcl, seq: 1,
            Wire.ifaddrmsg(family: 2, prefixLength: 24, flags: 0x02, scope: 0, index: 4),
            Wire.attr(2, [10, 22, 0, 5]),
            Wire.attr(1, [10, 22, 0, 5]),
            Wire.attr(4, [10, 22, 0, 255]),
            Wire.attr(3, Wire.str("eth0:a")))
        expectBytes(sent, expected)
    }

    @Test func addIPv6AddressWithNoDAD() throws {
        let sent = try requests {
            try $0.addAddress(prefix("fd00::5/64"), index: 4, options: AddressOptions(noDAD: true))
        }
        let address: [UInt8] = [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [5]
        let expected = Wire.message(
            type: 20, flags: Wire.createExcl, seq: 1,
            Wire.ifaddrmsg(family: 10, prefixLength: 64, flags: 0x02, scope: 0, index: 4),
            Wire.attr(2, address),
            Wire.attr(1, address))
        expectBytes(sent, expected)
    }

    @Test func addRouteWithGatewayTableMetricOnLink() throws {
        // RTA_DST 1, RTA_OIF 4, RTA_GATEWAY 5, RTA_PRIORITY 6, RTA_METRICS 8, RTA_TABLE 15,
        // RTAX_MTU 2; RTPROT_BOOT 3, RTN_UNICAST 1, RTNH_F_ONLINK 4.
        let sent = try requests { netlink in
            try netlink.addRoute(
                Route(
                    destination: prefix("10.50.0.0/16"), gateway: ip("10.1.0.1"), outputIndex: 6, table: 100,
                    metric: 20, onLink: true, mtu: 1400))
        }
        let expected = Wire.message(
            type: 24, flags: Wire.createExcl, seq: 1,
            Wire.rtmsg(family: 2, dstLen: 16, table: 100, proto: 3, scope: 0, type: 1, flags: 4),
            Wire.attr(15, Wire.u32(100)),
            Wire.attr(1, [10, 50, 0, 0]),
            Wire.attr(5, [10, 1, 0, 1]),
            Wire.attr(4, Wire.u32(6)),
            Wire.attr(6, Wire.u32(20)),
            Wire.nest(8, Wire.attr(2, Wire.u32(1400))))
        expectBytes(sent, expected)
    }

    @Test func replaceIPv6DefaultRouteInBigTable() throws {
        let sent = try requests { try $0.replaceRoute(Route.defaultRoute(via: ip("fd00::1"), table: 1000)) }
        let gateway: [UInt8] = [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [1]
        let expected = Wire.message(
            type: 24, flags: Wire.createReplace, seq: 1,
            Wire.rtmsg(family: 10, dstLen: 0, table: 0, proto: 3, scope: 0, type: 1, flags: 0),
            Wire.attr(15, Wire.u32(1000)),
            Wire.attr(5, gateway))
        expectBytes(sent, expected)
    }

    @Test func directRouteThroughDeviceHasLinkScope() throws {
        // RT_SCOPE_LINK 253, as `ip route add 10.60.0.0/24 dev X` sends; plus RTA_PREFSRC 7.
        let sent = try requests { netlink in
            try netlink.addRoute(Route(destination: prefix("10.60.0.0/24"), outputIndex: 2, source: ip("10.60.0.1")))
        }
        let expected = Wire.message(
            type: 24, flags: Wire.createExcl, seq: 1,
            Wire.rtmsg(family: 2, dstLen: 24, table: 254, proto: 3, scope: 253, type: 1, flags: 0),
            Wire.attr(15, Wire.u32(254)),
            Wire.attr(1, [10, 60, 0, 0]),
            Wire.attr(4, Wire.u32(2)),
            Wire.attr(7, [10, 60, 0, 1]))
        expectBytes(sent, expected)
    }

    @Test func deleteNeighborAndFDB() throws {
        // RTM_DELNEIGH 29; an FDB entry learned by a bridge is deleted with NTF_MASTER (0x04).
        let sent = try requests { netlink in
            try netlink.deleteNeighbor(Neighbor(index: 8, address: ip("10.0.0.7"), mac: nil))
            try netlink.deleteFDB(FDBEntry(index: 9, mac: mac("02:00:00:00:00:09"), flags: .master))
        }
        let expected: [[UInt8]] = [
            Wire.message(
                type: 29, flags: Wire.plain, seq: 1,
                Wire.ndmsg(family: 2, index: 8, state: 0x80, flags: 0, type: 1),
                Wire.attr(1, [10, 0, 0, 7])),
            Wire.message(
                type: 29, flags: Wire.plain, seq: 2,
                Wire.ndmsg(family: 7, index: 9, state: 0x80, flags: 0x04, type: 0),
                Wire.attr(2, [2, 0, 0, 0, 0, 9])),
        ]
        #expect(sent.map(Wire.hex) == expected.map(Wire.hex))
    }

    @Test func addPermanentNeighbor() throws {
        // NDA_DST 1, NDA_LLADDR 2; NUD_PERMANENT 0x80.
        let sent = try requests { netlink in
            try netlink.addNeighbor(Neighbor(index: 8, address: ip("10.0.0.7"), mac: mac("02:00:0a:00:00:07")))
        }
        let expected = Wire.message(
            type: 28, flags: Wire.createExcl, seq: 1,
            Wire.ndmsg(family: 2, index: 8, state: 0x80, flags: 0, type: 1),
            Wire.attr(1, [10, 0, 0, 7]),
            Wire.attr(2, [2, 0, 10, 0, 0, 7]))
        expectBytes(sent, expected)
    }

    @Test func fdbEntryWithVxlanDestination() throws {
        // AF_BRIDGE 7, NTF_SELF 0x02; NDA_PORT 6 (big-endian), NDA_VNI 7.
        let sent = try requests { netlink in
            try netlink.appendFDB(
                FDBEntry(index: 9, mac: mac("00:00:00:00:00:00"), destination: ip("192.168.1.20"), vni: 42, port: 4789))
        }
        let expected = Wire.message(
            type: 28, flags: Wire.createAppend, seq: 1,
            Wire.ndmsg(family: 7, index: 9, state: 0x80, flags: 0x02, type: 0),
            Wire.attr(2, [0, 0, 0, 0, 0, 0]),
            Wire.attr(1, [192, 168, 1, 20]),
            Wire.attr(6, [0x12, 0xb5]),
            Wire.attr(7, Wire.u32(42)))
        expectBytes(sent, expected)
    }

    @Test func bridgePortHairpinAndIsolated() throws {
        // IFLA_BRPORT_MODE 4, IFLA_BRPORT_ISOLATED 33; IFLA_PROTINFO must carry NLA_F_NESTED.
        let sent = try requests { try $0.setBridgePort(index: 12, hairpin: true, isolated: false) }
        let expected = Wire.message(
            type: 19, flags: Wire.plain, seq: 1,
            Wire.ifinfomsg(family: 7, index: 12),
            Wire.nest(12, Wire.attr(4, [1]), Wire.attr(33, [0])))
        expectBytes(sent, expected)
    }

    @Test func bridgeVLANPvidUntagged() throws {
        // IFLA_BRIDGE_VLAN_INFO 2 = struct bridge_vlan_info { u16 flags; u16 vid; };
        // BRIDGE_VLAN_INFO_PVID 0x2, _UNTAGGED 0x4.
        let sent = try requests { try $0.addBridgeVLAN(index: 12, BridgeVLAN(vid: 100, pvid: true, untagged: true)) }
        let expected = Wire.message(
            type: 19, flags: Wire.plain, seq: 1,
            Wire.ifinfomsg(family: 7, index: 12),
            Wire.nest(26, Wire.attr(2, Wire.u16(0x6) + Wire.u16(100))))
        expectBytes(sent, expected)
    }

    @Test func bridgeVLANRangeOnBridgeAndDelete() throws {
        // BRIDGE_VLAN_INFO_RANGE_BEGIN 0x8, _RANGE_END 0x10; IFLA_BRIDGE_FLAGS 0 = SELF (2).
        let sent = try requests { netlink in
            try netlink.addBridgeVLAN(index: 3, BridgeVLAN(range: 10...20), onBridge: true)
            try netlink.deleteBridgeVLAN(index: 12, BridgeVLAN(vid: 7))
        }
        let expected: [[UInt8]] = [
            Wire.message(
                type: 19, flags: Wire.plain, seq: 1,
                Wire.ifinfomsg(family: 7, index: 3),
                Wire.nest(
                    26,
                    Wire.attr(0, Wire.u16(2)),
                    Wire.attr(2, Wire.u16(0x8) + Wire.u16(10)),
                    Wire.attr(2, Wire.u16(0x10) + Wire.u16(20)))),
            Wire.message(
                type: 17, flags: Wire.plain, seq: 2,
                Wire.ifinfomsg(family: 7, index: 12),
                Wire.nest(26, Wire.attr(2, Wire.u16(0) + Wire.u16(7)))),
        ]
        #expect(sent.map(Wire.hex) == expected.map(Wire.hex))
    }

    @Test func bridgeVLANFiltering() throws {
        // IFLA_BR_VLAN_FILTERING 7 inside IFLA_INFO_DATA of kind "bridge".
        let sent = try requests { try $0.setBridgeVLANFiltering(index: 3, true) }
        let expected = Wire.message(
            type: 16, flags: Wire.plain, seq: 1,
            Wire.ifinfomsg(index: 3),
            Wire.nest(18, Wire.attr(1, Wire.str("bridge")), Wire.nest(2, Wire.attr(7, [1]))))
        expectBytes(sent, expected)
    }

    @Test func ipv4DeviceConfigOverNetlink() throws {
        // IFLA_AF_SPEC 26 > AF_INET 2 > IFLA_INET_CONF 1 > IPV4_DEVCONF_ARP_NOTIFY 22,
        // IPV4_DEVCONF_ROUTE_LOCALNET 26, each a u32, in index order.
        let sent = try requests { try $0.setIPv4DeviceConfig(index: 9, [.routeLocalnet: 1, .arpNotify: 1]) }
        let expected = Wire.message(
            type: 16, flags: Wire.plain, seq: 1, Wire.ifinfomsg(index: 9),
            Wire.nest(26, Wire.nest(2, Wire.nest(1, Wire.attr(22, Wire.u32(1)), Wire.attr(26, Wire.u32(1))))))
        expectBytes(sent, expected)
    }

    @Test func ipv6AddressGenerationOverNetlink() throws {
        // IFLA_AF_SPEC 26 > AF_INET6 10 > IFLA_INET6_ADDR_GEN_MODE 8, a u8: none is 1.
        let sent = try requests { try $0.setIPv6AddressGeneration(index: 9, .none) }
        let expected = Wire.message(
            type: 16, flags: Wire.plain, seq: 1, Wire.ifinfomsg(index: 9),
            Wire.nest(26, Wire.nest(10, Wire.attr(8, [1]))))
        expectBytes(sent, expected)
    }

    @Test func forwardingIsAskedWithGetNetconfForAllInterfaces() throws {
        // RTM_GETNETCONF 82, struct netconfmsg padded to 4, NETCONFA_IFINDEX 1 = -1 (ALL);
        // the answer, RTM_NEWNETCONF 80, carries NETCONFA_FORWARDING 2.
        let transport = RecordingTransport(portID: 77)
        transport.responder = { request in
            [
                Wire.message(
                    type: 80, flags: 0, seq: Wire.seq(of: request), pid: 77, [10, 0, 0, 0], Wire.attr(1, Wire.i32(-1)),
                    Wire.attr(2, Wire.i32(0))),
                Wire.errorReply(to: request, error: 0, pid: 77),
            ]
        }
        let netlink = RouteNetlink(transport: transport, firstSequence: 1)
        #expect(try netlink.forwarding(.v6) == false)
        let expected = Wire.message(type: 82, flags: Wire.plain, seq: 1, [10, 0, 0, 0], Wire.attr(1, Wire.i32(-1)))
        expectBytes(transport.sent, expected)
    }

    @Test func invalidInputIsRejectedBeforeSending() throws {
        let transport = RecordingTransport()
        let netlink = RouteNetlink(transport: transport, firstSequence: 1)
        for name in ["", "a/b", "has space", "sixteen-chars-xx", ".."] {
            #expect(throws: NetlinkError.self) { try netlink.createBridge(name: name) }
        }
        #expect(throws: NetlinkError.self) { try netlink.createVxlan(VxlanDevice(name: "vx", vni: 1 << 24)) }
        #expect(throws: NetlinkError.self) { try netlink.addBridgeVLAN(index: 1, BridgeVLAN(vid: 4095)) }
        #expect(throws: NetlinkError.self) {
            try netlink.addRoute(Route(destination: prefix("10.0.0.0/8"), gateway: ip("fd00::1")))
        }
        #expect(transport.sent.isEmpty)
    }
}
