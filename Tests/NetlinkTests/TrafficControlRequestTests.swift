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
    #expect(Wire.hex(actual.first ?? []) == Wire.hex(expected), sourceLocation: sourceLocation)
}

/// struct tcmsg: family, pad1, pad2, ifindex, handle, parent, info.
private func tcmsg(index: Int32, handle: UInt32 = 0, parent: UInt32 = 0, info: UInt32 = 0) -> [UInt8] {
    [0, 0, 0, 0] + Wire.i32(index) + Wire.u32(handle) + Wire.u32(parent) + Wire.u32(info)
}

private func u64(_ value: UInt64) -> [UInt8] {
    Wire.u32(UInt32(truncatingIfNeeded: value)) + Wire.u32(UInt32(truncatingIfNeeded: value >> 32))
}

/// struct tc_tbf_qopt: rate (tc_ratespec: cell_log, linklayer, overhead, cell_align, mpu,
/// rate), peakrate (all zero), limit, buffer, mtu.
private func tbfOptions(rate: UInt32, limit: UInt32, buffer: UInt32) -> [UInt8] {
    [0, 1] + Wire.u16(0) + Wire.u16(0) + Wire.u16(0) + Wire.u32(rate) + [UInt8](repeating: 0, count: 12)
        + Wire.u32(limit) + Wire.u32(buffer) + Wire.u32(0)
}

// uapi numbers used below (linux/rtnetlink.h, pkt_sched.h, pkt_cls.h, tc_act/tc_mirred.h):
// RTM_NEWLINK 16, RTM_NEWQDISC 36, RTM_DELQDISC 37, RTM_GETQDISC 38, RTM_NEWTFILTER 44,
// RTM_GETTFILTER 46; TCA_KIND 1, TCA_OPTIONS 2; TCA_TBF_PARMS 1, TCA_TBF_RATE64 4,
// TCA_TBF_BURST 6; TCA_U32_SEL 5, TCA_U32_ACT 7, TC_U32_TERMINAL 1; TCA_ACT_KIND 1,
// TCA_ACT_OPTIONS 2; TCA_MIRRED_PARMS 2, TCA_EGRESS_REDIR 1, TC_ACT_STOLEN 4;
// TC_H_ROOT ffffffff, TC_H_INGRESS fffffff1; ETH_P_ALL 3 (sent as htons: 0x0300).
@Suite struct TrafficControlRequestTests {
    @Test func createIFBUpWithMTU() throws {
        let sent = try requests { try $0.createIFB(name: "bwp0123abcd", mtu: 1450) }
        let expected = Wire.message(
            type: 16, flags: Wire.createExcl, seq: 1,
            Wire.ifinfomsg(flags: 1, change: 1),
            Wire.attr(3, Wire.str("bwp0123abcd")),
            Wire.attr(4, Wire.u32(1450)),
            Wire.nest(18, Wire.attr(1, Wire.str("ifb"))))
        expectBytes(sent, expected)
    }

    /// `tc qdisc replace dev X root handle 1: tbf rate 10mbit burst 125000 limit 156250`:
    /// 125000 bytes at 1.25 MB/s take 100 ms, 1 562 500 ticks of 64 ns.
    @Test func replaceRootTokenBucket() throws {
        let bucket = TokenBucket(rate: 1_250_000, burst: 125_000, limit: 156_250)
        #expect(bucket.bufferTicks == 1_562_500)
        let sent = try requests { try $0.replaceRootTokenBucket(index: 7, bucket) }
        let expected = Wire.message(
            type: 36, flags: Wire.createReplace, seq: 1,
            tcmsg(index: 7, handle: 0x0001_0000, parent: 0xffff_ffff),
            Wire.attr(1, Wire.str("tbf")),
            Wire.nest(
                2,
                Wire.attr(1, tbfOptions(rate: 1_250_000, limit: 156_250, buffer: 1_562_500)),
                Wire.attr(6, Wire.u32(125_000))))
        expectBytes(sent, expected)
    }

    /// 40 Gbit/s is 5e9 bytes/s, past the 32-bit field: it saturates and RATE64 carries it.
    @Test func fastRatesTravelInRate64() throws {
        let bucket = TokenBucket(rate: 5_000_000_000, burst: 500_000_000, limit: 625_000_000)
        let sent = try requests { try $0.replaceRootTokenBucket(index: 3, bucket) }
        let expected = Wire.message(
            type: 36, flags: Wire.createReplace, seq: 1,
            tcmsg(index: 3, handle: 0x0001_0000, parent: 0xffff_ffff),
            Wire.attr(1, Wire.str("tbf")),
            Wire.nest(
                2,
                Wire.attr(1, tbfOptions(rate: 0xffff_ffff, limit: 625_000_000, buffer: 1_562_500)),
                Wire.attr(4, u64(5_000_000_000)),
                Wire.attr(6, Wire.u32(500_000_000))))
        expectBytes(sent, expected)
    }

    @Test func zeroRateIsRefusedBeforeSending() throws {
        let transport = RecordingTransport(portID: 77)
        let netlink = RouteNetlink(transport: transport, firstSequence: 1)
        #expect(throws: NetlinkError.self) {
            try netlink.replaceRootTokenBucket(index: 3, TokenBucket(rate: 0, burst: 1000, limit: 2000))
        }
        #expect(transport.sent.isEmpty)
    }

    @Test func bufferTicksSaturateInsteadOfOverflowing() {
        // 4 GB at 1 byte/s is far beyond 2^32 ticks.
        #expect(TokenBucket(rate: 1, burst: UInt32.max, limit: UInt32.max).bufferTicks == UInt32.max)
        #expect(TokenBucket(rate: 1_250_000, burst: 3028, limit: 34278).bufferTicks == 37850)
    }

    @Test func addIngressQdisc() throws {
        let sent = try requests { try $0.addIngressQdisc(index: 7) }
        let expected = Wire.message(
            type: 36, flags: Wire.createExcl, seq: 1,
            tcmsg(index: 7, handle: 0xffff_0000, parent: 0xffff_fff1),
            Wire.attr(1, Wire.str("ingress")))
        expectBytes(sent, expected)
    }

    /// `tc filter add dev X parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred
    /// egress redirect dev <9>`.
    @Test func addRedirectFilter() throws {
        let sent = try requests { try $0.addRedirectFilter(index: 7, to: 9) }
        // struct tc_u32_sel: flags, offshift, nkeys, pad, offmask, off, offoff, hoff, hmask;
        // then struct tc_u32_key: mask, val, off, offmask.
        let selector =
            [1, 0, 1, 0] + Wire.u16(0) + Wire.u16(0) + Wire.u16(0) + Wire.u16(0) + Wire.u32(0)
            + Wire.u32(0) + Wire.u32(0) + Wire.u32(0) + Wire.u32(0)
        // struct tc_mirred: index, capab, action, refcnt, bindcnt, eaction, ifindex.
        let mirred =
            Wire.u32(0) + Wire.u32(0) + Wire.i32(4) + Wire.i32(0) + Wire.i32(0) + Wire.i32(1) + Wire.u32(9)
        let expected = Wire.message(
            type: 44, flags: Wire.createExcl, seq: 1,
            tcmsg(index: 7, parent: 0xffff_0000, info: 0x0001_0300),
            Wire.attr(1, Wire.str("u32")),
            Wire.nest(
                2,
                Wire.attr(5, selector),
                Wire.nest(
                    7,
                    Wire.nest(
                        1,
                        Wire.attr(1, Wire.str("mirred")),
                        Wire.nest(2, Wire.attr(2, mirred))))))
        expectBytes(sent, expected)
    }

    @Test func deleteRootAndIngressQdiscs() throws {
        let root = try requests { try $0.deleteQdisc(index: 7, parent: QdiscHandle.root) }
        expectBytes(root, Wire.message(type: 37, flags: Wire.plain, seq: 1, tcmsg(index: 7, parent: 0xffff_ffff)))
        let ingress = try requests { try $0.deleteQdisc(index: 7, parent: QdiscHandle.ingressParent) }
        expectBytes(ingress, Wire.message(type: 37, flags: Wire.plain, seq: 1, tcmsg(index: 7, parent: 0xffff_fff1)))
    }

    /// A get of one qdisc (NLM_F_ECHO 0x08); "no ingress queue" (ENOENT) is nil, not an error.
    @Test func getQdiscByParent() throws {
        let transport = RecordingTransport(portID: 77)
        transport.responder = { request in
            let seq = Wire.seq(of: request)
            let parent = request.count >= 32 ? Array(request[28..<32]) : []
            if parent == Wire.u32(0xffff_fff1) { return [Wire.errorReply(to: request, error: -2, pid: 77)] }
            let root = Wire.message(
                type: 36, flags: 0, seq: seq, pid: 77, tcmsg(index: 7, parent: 0xffff_ffff),
                Wire.attr(1, Wire.str("noqueue")))
            return [root, Wire.errorReply(to: request, error: 0, pid: 77)]
        }
        let netlink = RouteNetlink(transport: transport, firstSequence: 1)
        #expect(try netlink.qdisc(index: 7, parent: QdiscHandle.root)?.kind == "noqueue")
        #expect(try netlink.qdisc(index: 7, parent: QdiscHandle.ingressParent) == nil)
        #expect(
            Wire.hex(transport.sent.first ?? [])
                == Wire.hex(
                    Wire.message(type: 38, flags: Wire.plain | 0x08, seq: 1, tcmsg(index: 7, parent: 0xffff_ffff))))
    }

    /// A qdisc dump lists every link's qdiscs; only the asked link's come back, TBFs decoded.
    @Test func qdiscDumpIsParsedAndFiltered() throws {
        let transport = RecordingTransport(portID: 77)
        transport.responder = { request in
            let seq = Wire.seq(of: request)
            let tbf = Wire.message(
                type: 36, flags: 0x02, seq: seq, pid: 77,
                tcmsg(index: 7, handle: 0x0001_0000, parent: 0xffff_ffff),
                Wire.attr(1, Wire.str("tbf")),
                Wire.nest(2, Wire.attr(1, tbfOptions(rate: 1_250_000, limit: 156_250, buffer: 1_562_500))))
            let ingress = Wire.message(
                type: 36, flags: 0x02, seq: seq, pid: 77,
                tcmsg(index: 7, handle: 0xffff_0000, parent: 0xffff_fff1),
                Wire.attr(1, Wire.str("ingress")))
            let other = Wire.message(
                type: 36, flags: 0x02, seq: seq, pid: 77, tcmsg(index: 8, parent: 0xffff_ffff),
                Wire.attr(1, Wire.str("noqueue")))
            return [tbf + ingress + other, Wire.done(seq: seq, pid: 77)]
        }
        let qdiscs = try RouteNetlink(transport: transport, firstSequence: 1).qdiscs(index: 7)
        #expect(
            Wire.hex(transport.sent.first ?? [])
                == Wire.hex(Wire.message(type: 38, flags: 0x301, seq: 1, tcmsg(index: 7))))
        #expect(qdiscs.map(\.kind) == ["tbf", "ingress"])
        #expect(qdiscs.first?.tokenBucket == TokenBucket(rate: 1_250_000, burst: 125_000, limit: 156_250))
        #expect(qdiscs.last?.parent == QdiscHandle.ingressParent)
    }

    /// u32 dumps its hash table node first (no actions), then the key node with the mirred action.
    @Test func filterDumpFindsTheRedirectTarget() throws {
        let transport = RecordingTransport(portID: 77)
        let mirred = Wire.u32(1) + Wire.u32(0) + Wire.i32(4) + Wire.i32(1) + Wire.i32(1) + Wire.i32(1) + Wire.u32(9)
        transport.responder = { request in
            let seq = Wire.seq(of: request)
            let table = Wire.message(
                type: 44, flags: 0x02, seq: seq, pid: 77,
                tcmsg(index: 7, handle: 0x8000_0000, parent: 0xffff_0000, info: 0x0001_0300),
                Wire.attr(1, Wire.str("u32")), Wire.nest(2, Wire.attr(4, Wire.u32(1))))
            let key = Wire.message(
                type: 44, flags: 0x02, seq: seq, pid: 77,
                tcmsg(index: 7, handle: 0x8000_0800, parent: 0xffff_0000, info: 0x0001_0300),
                Wire.attr(1, Wire.str("u32")),
                Wire.nest(
                    2,
                    Wire.nest(
                        7,
                        Wire.nest(1, Wire.attr(1, Wire.str("mirred")), Wire.nest(2, Wire.attr(2, mirred))))))
            return [table + key, Wire.done(seq: seq, pid: 77)]
        }
        let filters = try RouteNetlink(transport: transport, firstSequence: 1).filters(
            index: 7, parent: QdiscHandle.ingress)
        #expect(
            Wire.hex(transport.sent.first ?? [])
                == Wire.hex(Wire.message(type: 46, flags: 0x301, seq: 1, tcmsg(index: 7, parent: 0xffff_0000))))
        #expect(filters.count == 2)
        #expect(filters.map(\.redirectIndex) == [nil, 9])
        #expect(filters.allSatisfy { $0.kind == "u32" && $0.priority == 1 && $0.protocolNumber == 0x0300 })
    }
}
