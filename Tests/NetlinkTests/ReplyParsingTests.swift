import Glibc
import IPAddressing
import Testing

@testable import Netlink

/// A RTM_NEWLINK message as the kernel would send it in a reply.
private func linkMessage(seq: UInt32, pid: UInt32, index: Int32, name: String, flags: UInt16 = 0x02) -> [UInt8] {
    Wire.message(
        type: 16, flags: flags, seq: seq, pid: pid,
        Wire.ifinfomsg(index: index, flags: 0x1 | 0x1_0000),
        Wire.attr(3, Wire.str(name)),
        Wire.attr(4, Wire.u32(1500)),
        Wire.attr(1, [2, 0, 0, 0, 0, UInt8(index)]),
        Wire.attr(10, Wire.u32(3)),
        Wire.attr(16, [6]),
        Wire.nest(
            18,
            Wire.attr(1, Wire.str("vxlan")),
            Wire.nest(2, Wire.attr(1, Wire.u32(42)), Wire.attr(15, [0x12, 0xb5]), Wire.attr(7, [0])),
            Wire.attr(4, Wire.str("bridge")),
            Wire.nest(5, Wire.attr(4, [1]), Wire.attr(33, [1]))),
        // IFLA_AF_SPEC 26 > AF_INET 2 > IFLA_INET_CONF 1: u32s from IPV4_DEVCONF_FORWARDING (1),
        // arp_notify (22) on; AF_INET6 10 > IFLA_INET6_CONF 2 (s32s from DEVCONF 0, accept_ra 3
        // = 2) and IFLA_INET6_ADDR_GEN_MODE 8 = none (1).
        Wire.nest(
            26,
            Wire.nest(2, Wire.attr(1, (1...26).flatMap { Wire.u32($0 == 1 || $0 == 22 ? 1 : 0) })),
            Wire.nest(10, Wire.attr(2, (0...30).flatMap { Wire.i32($0 == 3 ? 2 : 0) }), Wire.attr(8, [1]))))
}

@Suite struct ReplyParsingTests {
    let pid: UInt32 = 99

    private func session(_ responder: @escaping ([UInt8]) -> [[UInt8]]) -> (RouteNetlink, RecordingTransport) {
        let transport = RecordingTransport(portID: pid)
        transport.responder = responder
        return (RouteNetlink(transport: transport, firstSequence: 500), transport)
    }

    @Test func ackCompletesTheRequest() throws {
        let pid = self.pid
        let (netlink, transport) = session { [Wire.errorReply(to: $0, error: 0, pid: pid)] }
        try netlink.setMTU(index: 2, 1400)
        try netlink.setMTU(index: 2, 1300)
        #expect(transport.sent.map(Wire.seq) == [500, 501])
        #expect(transport.replies.isEmpty)
    }

    @Test func kernelErrorCarriesErrnoOperationAndReason() throws {
        let pid = self.pid
        let (netlink, _) = session {
            [Wire.errorReply(to: $0, error: -ENODEV, pid: pid, extackMessage: "Unknown device")]
        }
        do {
            try netlink.setMTU(index: 77, 1400)
            Issue.record("the error reply was not turned into an error")
        } catch {
            #expect(error.kind == .kernel)
            #expect(error.errno == ENODEV)
            #expect(error.isNotFound)
            #expect(!error.isExists)
            #expect(error.operation == "set link 77 mtu 1400")
            #expect(error.detail == "Unknown device")
            #expect(error.description.contains("No such device"))
        }
    }

    @Test func existsIsRecognised() throws {
        let pid = self.pid
        let (netlink, _) = session { [Wire.errorReply(to: $0, error: -EEXIST, pid: pid)] }
        do {
            try netlink.createBridge(name: "br0")
            Issue.record("EEXIST was swallowed")
        } catch {
            #expect(error.isExists)
            #expect(error.operation == "create bridge br0")
        }
    }

    @Test func getParsesTheLinkBeforeTheAck() throws {
        let pid = self.pid
        let (netlink, transport) = session { request in
            let seq = Wire.seq(of: request)
            return [
                linkMessage(seq: seq, pid: pid, index: 7, name: "vx42", flags: 0)
                    + Wire.errorReply(to: request, error: 0, pid: pid)
            ]
        }
        let link = try netlink.link(named: "vx42")
        // The request: RTM_GETLINK 18 with IFLA_IFNAME.
        #expect(
            Wire.hex(transport.sent[0])
                == Wire.hex(
                    Wire.message(
                        type: 18, flags: Wire.plain, seq: 500, Wire.ifinfomsg(), Wire.attr(3, Wire.str("vx42")),
                        Wire.attr(29, Wire.u32(8)))))
        #expect(link.index == 7)
        #expect(link.name == "vx42")
        #expect(link.mtu == 1500)
        #expect(link.mac == MACAddress(bytes: [2, 0, 0, 0, 0, 7]))
        #expect(link.isUp && link.hasCarrier)
        #expect(link.operationalState == .up)
        #expect(link.masterIndex == 3)
        #expect(link.kind == .vxlan)
        #expect(link.vxlan?.vni == 42)
        #expect(link.vxlan?.port == 4789)
        #expect(link.vxlan?.learning == false)
        #expect(link.slaveKind == .bridge)
        #expect(link.bridgePort == BridgePortInfo(hairpin: true, isolated: true))
        #expect(link.ipv4Setting(.forwarding) == 1)
        #expect(link.ipv4Setting(.arpNotify) == 1)
        #expect(link.ipv4Setting(.routeLocalnet) == 0)
        #expect(link.ipv6Setting(.acceptRA) == 2)
        #expect(link.ipv6Setting(.disableIPv6) == 0)
        #expect(link.ipv6AddressGeneration == IPv6AddressGeneration.none)
    }

    @Test func multipartDumpIsCollectedAcrossDatagrams() throws {
        let pid = self.pid
        let (netlink, transport) = session { request in
            let seq = Wire.seq(of: request)
            return [
                linkMessage(seq: seq, pid: pid, index: 1, name: "lo")
                    + linkMessage(seq: seq, pid: pid, index: 2, name: "a"),
                linkMessage(seq: seq, pid: pid, index: 3, name: "b"),
                Wire.done(seq: seq, pid: pid),
            ]
        }
        let links = try netlink.links()
        #expect(links.map(\.name) == ["lo", "a", "b"])
        // A dump request: NLM_F_REQUEST | NLM_F_DUMP (0x300), no ACK (NLMSG_DONE ends it);
        // IFLA_EXT_MASK (29) = RTEXT_FILTER_SKIP_STATS (8).
        #expect(
            Wire.hex(transport.sent[0])
                == Wire.hex(
                    Wire.message(type: 18, flags: 0x301, seq: 500, Wire.ifinfomsg(), Wire.attr(29, Wire.u32(8)))))
    }

    @Test func interruptedDumpIsRetried() throws {
        let pid = self.pid
        var attempt = 0
        let (netlink, transport) = session { request in
            attempt += 1
            let seq = Wire.seq(of: request)
            // NLM_F_DUMP_INTR (0x10) on the first attempt: its result must be thrown away.
            let flags: UInt16 = attempt == 1 ? 0x12 : 0x02
            return [
                linkMessage(seq: seq, pid: pid, index: 1, name: attempt == 1 ? "stale" : "fresh", flags: flags),
                Wire.done(seq: seq, pid: pid, flags: flags),
            ]
        }
        let links = try netlink.links()
        #expect(links.map(\.name) == ["fresh"])
        #expect(transport.sent.count == 2)
        #expect(transport.sent.map(Wire.seq) == [500, 501])
    }

    @Test func dumpInterruptedEveryTimeFails() throws {
        let pid = self.pid
        let (netlink, transport) = session { request in
            [Wire.done(seq: Wire.seq(of: request), pid: pid, flags: 0x12)]
        }
        do {
            _ = try netlink.links()
            Issue.record("a permanently interrupted dump succeeded")
        } catch {
            #expect(error.kind == .dumpInterrupted)
        }
        #expect(transport.sent.count == RouteNetlink.dumpAttempts)
    }

    @Test func dumpErrorInDoneIsReported() throws {
        let pid = self.pid
        let (netlink, _) = session { request in
            [Wire.message(type: 3, flags: 0x02, seq: Wire.seq(of: request), pid: pid, Wire.i32(-EOPNOTSUPP))]
        }
        #expect(throws: NetlinkError(.kernel, operation: "list links", errno: EOPNOTSUPP)) {
            _ = try netlink.links()
        }
    }

    @Test func sequenceMismatchIsRejected() throws {
        let pid = self.pid
        let (netlink, _) = session { request in
            var reply = Wire.errorReply(to: request, error: 0, pid: pid)
            reply[8] &+= 1
            return [reply]
        }
        do {
            try netlink.setLinkUp(index: 1)
            Issue.record("a reply to another request was accepted")
        } catch {
            #expect(error.kind == .protocolViolation)
            #expect(error.errno == EPROTO)
            #expect(error.detail?.contains("sequence") == true)
        }
    }

    @Test func portMismatchIsRejected() throws {
        let (netlink, _) = session { [Wire.errorReply(to: $0, error: 0, pid: 12345)] }
        #expect(throws: NetlinkError.self) { try netlink.setLinkUp(index: 1) }
    }

    @Test func truncatedReplyIsRejected() throws {
        let pid = self.pid
        let (netlink, _) = session { request in
            [Array(Wire.errorReply(to: request, error: 0, pid: pid).dropLast(6))]
        }
        do {
            try netlink.setLinkUp(index: 1)
            Issue.record("a truncated reply was accepted")
        } catch {
            #expect(error.kind == .protocolViolation)
        }
    }

    @Test func uncappedErrorWithExtendedAckIsParsed() throws {
        // Without NETLINK_CAP_ACK the kernel echoes the whole request before the TLVs.
        let pid = self.pid
        let (netlink, _) = session { request in
            [
                Wire.message(
                    type: 2, flags: 0x200, seq: Wire.seq(of: request), pid: pid, Wire.i32(-EBUSY), request,
                    Wire.attr(1, Wire.str("Cannot rename an up device")))
            ]
        }
        do {
            try netlink.rename(index: 3, to: "eth1")
            Issue.record("EBUSY was swallowed")
        } catch {
            #expect(error.errno == EBUSY)
            #expect(error.detail == "Cannot rename an up device")
            #expect(error.operation == "rename link 3 to eth1")
        }
    }

    @Test func malformedBytesNeverCrashTheParsers() {
        // Replies come from the kernel, but a parser must still stay within bounds whatever it gets.
        var generator = SystemRandomNumberGenerator()
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = NetlinkMessage.split(bytes)
            let attributes = Attributes(bytes)
            _ = attributes.string(3)
            _ = attributes.u32(4)
            let message = NetlinkMessage(type: 16, flags: 0, sequence: 0, portID: 0, payload: bytes)
            _ = Link(message)
            _ = Address(NetlinkMessage(type: 20, flags: 0, sequence: 0, portID: 0, payload: bytes))
            _ = Route(NetlinkMessage(type: 24, flags: 0, sequence: 0, portID: 0, payload: bytes))
            _ = Neighbor(NetlinkMessage(type: 28, flags: 0, sequence: 0, portID: 0, payload: bytes))
            _ = FDBEntry(NetlinkMessage(type: 28, flags: 0, sequence: 0, portID: 0, payload: bytes))
        }
        // An attribute claiming more bytes than there are ends parsing instead of reading past.
        let lying = Wire.u16(200) + Wire.u16(3) + [1, 2, 3, 4]
        #expect(Attributes(lying).entries.isEmpty)
    }

    @Test func addressRouteNeighborAndFDBDumpsParse() throws {
        let pid = self.pid
        let (netlink, _) = session { request in
            let seq = Wire.seq(of: request)
            let type = request[4]
            let body: [UInt8]
            switch type {
            case 22:  // RTM_GETADDR -> RTM_NEWADDR
                body = Wire.message(
                    type: 20, flags: 2, seq: seq, pid: pid,
                    Wire.ifaddrmsg(family: 2, prefixLength: 24, flags: 0x80, scope: 0, index: 4),
                    Wire.attr(1, [10, 0, 0, 5]), Wire.attr(2, [10, 0, 0, 5]), Wire.attr(3, Wire.str("eth0")))
            case 26:  // RTM_GETROUTE -> RTM_NEWROUTE
                body = Wire.message(
                    type: 24, flags: 2, seq: seq, pid: pid,
                    Wire.rtmsg(family: 2, dstLen: 0, table: 254, proto: 3, scope: 0, type: 1, flags: 4),
                    Wire.attr(15, Wire.u32(254)), Wire.attr(5, [10, 0, 0, 1]), Wire.attr(4, Wire.u32(4)),
                    Wire.attr(6, Wire.u32(100)))
            default:  // RTM_GETNEIGH -> RTM_NEWNEIGH for the family asked
                let family = request[16]
                body =
                    family == 7
                    ? Wire.message(
                        type: 28, flags: 2, seq: seq, pid: pid,
                        Wire.ndmsg(family: 7, index: 9, state: 0x80, flags: 2, type: 0),
                        Wire.attr(2, [2, 0, 0, 0, 0, 9]), Wire.attr(1, [192, 168, 1, 2]))
                    : Wire.message(
                        type: 28, flags: 2, seq: seq, pid: pid,
                        Wire.ndmsg(family: 2, index: 4, state: 0x80, flags: 0, type: 1),
                        Wire.attr(1, [10, 0, 0, 9]), Wire.attr(2, [2, 0, 0, 0, 0, 9]))
            }
            return [body, Wire.done(seq: seq, pid: pid)]
        }
        let addresses = try netlink.addresses()
        #expect(addresses.map(\.prefix.description) == ["10.0.0.5/24"])
        #expect(addresses.first?.label == "eth0")
        let routes = try netlink.routes(family: .v4)
        #expect(routes.first?.isDefault == true)
        #expect(routes.first?.gateway == IPAddress("10.0.0.1"))
        #expect(routes.first?.outputIndex == 4)
        #expect(routes.first?.metric == 100)
        #expect(routes.first?.onLink == true)
        let neighbors = try netlink.neighbors(family: .v4)
        #expect(neighbors.first?.address == IPAddress("10.0.0.9"))
        #expect(neighbors.first?.state == .permanent)
        let fdb = try netlink.fdbEntries()
        #expect(fdb.first?.destination == IPAddress("192.168.1.2"))
        #expect(fdb.first?.flags.contains(.ownedByDevice) == true)
    }
}
