import Netlink
import PluginSupport
import Testing

/// `VLANGateway.ensure` against a fake kernel, request by request: this machine's kernel has
/// no bridge VLAN filtering, so the exact requests are the test here (BridgeOptionsTests has
/// the real-kernel test for kernels that have it).
@Suite struct VLANGatewayRequestTests {
    /// Answers RTM_GETLINK from a table of links (ENODEV for unknown names) and ACKs the rest.
    final class FakeKernel {
        var links: [String: (index: Int32, master: Int32?)] = [:]
        var mtus: [Int32: UInt32] = [:]
        let transport = RecordingTransport(portID: 77)

        init() {
            transport.responder = { [unowned self] request in self.reply(to: request) }
        }

        func reply(to request: [UInt8]) -> [[UInt8]] {
            let type = UInt16(request[4]) | UInt16(request[5]) << 8
            guard type == 18 else { return [Wire.errorReply(to: request, error: 0, pid: 77)] }
            let index = Int32(bitPattern: UInt32(request[20]) | UInt32(request[21]) << 8 | UInt32(request[22]) << 16)
            let name = Self.stringAttribute(3, in: request, from: 32)
            guard let (linkName, link) = links.first(where: { $0.key == name || $0.value.index == index }) else {
                return [Wire.errorReply(to: request, error: -19, pid: 77)]
            }
            var attributes = Wire.attr(3, Wire.str(linkName))
            if let master = link.master { attributes += Wire.attr(10, Wire.u32(UInt32(master))) }
            if let mtu = mtus[link.index] { attributes += Wire.attr(4, Wire.u32(mtu)) }
            let answer = Wire.message(
                type: 16, flags: 0, seq: Wire.seq(of: request), pid: 77, Wire.ifinfomsg(index: link.index), attributes)
            return [answer, Wire.errorReply(to: request, error: 0, pid: 77)]
        }

        static func stringAttribute(_ wanted: UInt16, in message: [UInt8], from start: Int) -> String? {
            var offset = start
            while offset + 4 <= message.count {
                let length = Int(message[offset]) | Int(message[offset + 1]) << 8
                let type = UInt16(message[offset + 2]) | UInt16(message[offset + 3]) << 8
                guard length >= 4, offset + length <= message.count else { return nil }
                if type == wanted {
                    return String(decoding: message[(offset + 4)..<(offset + length)].prefix { $0 != 0 }, as: UTF8.self)
                }
                offset += (length + 3) & ~3
            }
            return nil
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }

    @Test func createsAVethWhosePortIsAnUntaggedMemberOfTheVLANAndReturnsTheGatewayEnd() throws {
        let kernel = FakeKernel()
        let netlink = RouteNetlink(transport: kernel.transport, firstSequence: 1)
        kernel.links["pier0"] = (7, nil)
        kernel.mtus[7] = 1400
        let bridge = try netlink.link(named: "pier0")
        let port = VLANGateway.portName(bridge: "pier0", vlan: 42)
        #expect(VLANGateway.interfaceName(bridge: "pier0", vlan: 42) == "pier0.42")
        #expect(port.hasPrefix("vgw") && port.utf8.count == 11)
        // The veth appears once it is created.
        kernel.transport.responder = { [unowned kernel] request in
            if request[4] == 16, Self.contains(request, Wire.attr(3, Wire.str(port))) {
                kernel.links[port] = (20, 7)
                kernel.links["pier0.42"] = (21, nil)
            }
            return kernel.reply(to: request)
        }

        let gateway = try VLANGateway.ensure(bridge: bridge, vlan: 42, preserveDefaultVLAN: false, netlink: netlink)
        #expect(gateway.index == 21 && gateway.name == "pier0.42")

        let sent = Array(kernel.transport.sent.dropFirst())
        // RTM_GETLINK(18) gateway: absent; RTM_NEWLINK(16) veth; GETLINK port; NEWLINK alias;
        // RTM_DELLINK(17) AF_BRIDGE VLAN 1; RTM_SETLINK(19) AF_BRIDGE VLAN 42; NEWLINK up (port);
        // GETLINK gateway; NEWLINK up (gateway); GETLINK gateway by index.
        #expect(sent.map { $0[4] } == [18, 16, 18, 16, 17, 19, 16, 18, 16, 18])
        let create = sent[1]
        #expect(Self.contains(create, Wire.attr(3, Wire.str(port))))
        #expect(Self.contains(create, Wire.attr(10, Wire.u32(7))))  // IFLA_MASTER: the bridge
        #expect(Self.contains(create, Wire.attr(4, Wire.u32(1400))))  // IFLA_MTU of the bridge
        #expect(Self.contains(create, Wire.attr(3, Wire.str("pier0.42"))))  // the peer, in VETH_INFO_PEER
        #expect(Self.contains(sent[3], Wire.attr(20, Wire.str("pier-gateway:pier0.42"))))  // IFLA_IFALIAS
        // AF_BRIDGE (7) requests on the port (index 20): IFLA_AF_SPEC (26) holding
        // IFLA_BRIDGE_VLAN_INFO (2) = { u16 flags; u16 vid }: VLAN 1 out, VLAN 42 PVID|UNTAGGED in.
        for (request, type, flags, vid) in [(sent[4], UInt16(17), UInt16(0), UInt16(1)), (sent[5], 19, 0x6, 42)] {
            let expected = Wire.message(
                type: type, flags: Wire.plain, seq: Wire.seq(of: request), Wire.ifinfomsg(family: 7, index: 20),
                Wire.nest(26, Wire.attr(2, Wire.u16(flags) + Wire.u16(vid))))
            #expect(Wire.hex(request) == Wire.hex(expected))
        }
    }

    @Test func preserveDefaultVLANKeepsVLAN1AndAnExistingGatewayIsReused() throws {
        let kernel = FakeKernel()
        let netlink = RouteNetlink(transport: kernel.transport, firstSequence: 1)
        kernel.links["br1"] = (7, nil)
        let bridge = try netlink.link(named: "br1")
        let port = VLANGateway.portName(bridge: "br1", vlan: 100)
        kernel.transport.responder = { [unowned kernel] request in
            if request[4] == 16, Self.contains(request, Wire.attr(3, Wire.str(port))) {
                kernel.links[port] = (30, 7)
                kernel.links["br1.100"] = (31, nil)
            }
            return kernel.reply(to: request)
        }
        _ = try VLANGateway.ensure(bridge: bridge, vlan: 100, preserveDefaultVLAN: true, netlink: netlink)
        #expect(!kernel.transport.sent.contains { $0[4] == 17 })

        let before = kernel.transport.sent.count
        let again = try VLANGateway.ensure(bridge: bridge, vlan: 100, preserveDefaultVLAN: true, netlink: netlink)
        #expect(again.index == 31)
        // Found by name: one GETLINK and a NEWLINK to bring it up (the fake reports it down).
        #expect(kernel.transport.sent[before...].map { $0[4] } == [18, 16])
    }
}
