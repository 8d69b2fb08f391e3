import Glibc
import IPAddressing
import Testing

@testable import Netlink

// uapi numbers used below: RTM_NEWLINK 16, RTM_GETLINK 18; IFLA_ADDRESS 1, IFLA_IFNAME 3,
// IFLA_MTU 4, IFLA_TXQLEN 13, IFLA_EXT_MASK 29 (RTEXT_FILTER_SKIP_STATS 8); IFF_UP 0x1,
// IFF_LOOPBACK 0x8, IFF_PROMISC 0x100, IFF_ALLMULTI 0x200.
@Suite struct LinkTuningRequestTests {
    let pid: UInt32 = 31

    /// A fake kernel: ACKs every request, answering a get with `linkReply` first.
    private func session(linkReply: [UInt8]? = nil) -> (RouteNetlink, RecordingTransport) {
        let pid = self.pid
        let transport = RecordingTransport(portID: pid)
        transport.responder = { request in
            let ack = Wire.errorReply(to: request, error: 0, pid: pid)
            guard let linkReply else { return [ack] }
            // The reply carries the request's sequence number, patched into bytes 8..<12.
            var reply = linkReply
            reply.replaceSubrange(8..<12, with: Wire.u32(Wire.seq(of: request)))
            reply.replaceSubrange(12..<16, with: Wire.u32(pid))
            return [reply + ack]
        }
        return (RouteNetlink(transport: transport, firstSequence: 40), transport)
    }

    @Test func allMulticastOnAndOffChangeOnlyThatFlag() throws {
        let (netlink, transport) = session()
        try netlink.setAllMulticast(index: 6, true)
        try netlink.setAllMulticast(index: 6, false)
        let expected = [
            Wire.message(type: 16, flags: Wire.plain, seq: 40, Wire.ifinfomsg(index: 6, flags: 0x200, change: 0x200)),
            Wire.message(type: 16, flags: Wire.plain, seq: 41, Wire.ifinfomsg(index: 6, flags: 0, change: 0x200)),
        ]
        #expect(transport.sent.map(Wire.hex) == expected.map(Wire.hex))
    }

    @Test func promiscuousOffClearsOnlyThatFlag() throws {
        let (netlink, transport) = session()
        try netlink.setPromiscuous(index: 6, false)
        let expected = Wire.message(
            type: 16, flags: Wire.plain, seq: 40, Wire.ifinfomsg(index: 6, flags: 0, change: 0x100))
        #expect(transport.sent.map(Wire.hex) == [Wire.hex(expected)])
    }

    @Test func transmitQueueLengthIsOneU32Attribute() throws {
        let (netlink, transport) = session()
        try netlink.setTransmitQueueLength(index: 6, 20000)
        let expected = Wire.message(
            type: 16, flags: Wire.plain, seq: 40, Wire.ifinfomsg(index: 6), Wire.attr(13, Wire.u32(20000)))
        #expect(transport.sent.map(Wire.hex) == [Wire.hex(expected)])
    }

    @Test func tunableLinkAsksByNameAndReadsQueueLengthAndFlags() throws {
        let reply = Wire.message(
            type: 16, flags: 0, seq: 0, pid: 0,
            Wire.ifinfomsg(index: 1, flags: 0x1 | 0x8 | 0x100 | 0x200),
            Wire.attr(3, Wire.str("lo")),
            Wire.attr(4, Wire.u32(65536)),
            Wire.attr(13, Wire.u32(1000)),
            Wire.attr(1, [0, 0, 0, 0, 0, 0]))
        let (netlink, transport) = session(linkReply: reply)
        let link = try netlink.tunableLink(named: "lo")
        let expected = Wire.message(
            type: 18, flags: Wire.plain, seq: 40, Wire.ifinfomsg(), Wire.attr(3, Wire.str("lo")),
            Wire.attr(29, Wire.u32(8)))
        #expect(transport.sent.map(Wire.hex) == [Wire.hex(expected)])
        #expect(link.index == 1)
        #expect(link.link.name == "lo")
        #expect(link.link.mtu == 65536)
        #expect(link.transmitQueueLength == 1000)
        #expect(link.isLoopback && link.isPromiscuous && link.isAllMulticast && link.link.isUp)
    }

    @Test func tunableLinkWithoutTheFlagsOrQueueLength() throws {
        let reply = Wire.message(
            type: 16, flags: 0, seq: 0, pid: 0, Wire.ifinfomsg(index: 4, flags: 0x1), Wire.attr(3, Wire.str("eth0")))
        let (netlink, _) = session(linkReply: reply)
        let link = try netlink.tunableLink(named: "eth0")
        #expect(link.transmitQueueLength == nil)
        #expect(!link.isLoopback && !link.isPromiscuous && !link.isAllMulticast)
    }

    @Test func aMissingLinkIsNotFound() throws {
        let pid = self.pid
        let transport = RecordingTransport(portID: pid)
        transport.responder = { [Wire.errorReply(to: $0, error: -ENODEV, pid: pid)] }
        let netlink = RouteNetlink(transport: transport, firstSequence: 1)
        #expect(throws: NetlinkError.self) { try netlink.tunableLink(named: "eth7") }
        do {
            _ = try netlink.tunableLink(named: "eth7")
        } catch {
            #expect(error.isNotFound)
            #expect(error.operation == "get link eth7")
        }
    }

    @Test func anInvalidNameIsRefusedBeforeSending() {
        let (netlink, transport) = session()
        #expect(throws: NetlinkError.self) { try netlink.tunableLink(named: "../etc") }
        #expect(transport.sent.isEmpty)
    }
}
