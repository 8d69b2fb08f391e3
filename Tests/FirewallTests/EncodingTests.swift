import Firewall
import IPAddressing
import NetlinkCore
import Testing

/// Byte-exact requests, without root or a kernel: the client encodes into a recording fake.
///
/// Attribute order follows libnftnl where it differs from nft's own (nft 1.0.6 writes the
/// element-list and rule headers itself: table before set name, user data after the
/// expressions); the kernel parses attributes by type, so order carries no meaning.
struct EncodingTests {
    private func encode(_ build: (inout Batch) -> Void, generation: UInt32? = nil) -> EncodedBatch {
        var batch = Batch()
        build(&batch)
        return NFTablesClient(transport: RecordingTransport(), firstSequence: 1).encode(batch, generation: generation)
    }

    @Test func createTableInetPier() {
        let encoded = encode { $0.add(Table(family: .inet, name: "pier")) }
        let expected =
            batchBegin(sequence: 1)
            + nfnlMessage(
                type: nftType(NFTMessage.newTable), flags: createFlags, sequence: 2, family: 1, [.string(1, "pier")])
            + batchEnd(sequence: 3)
        #expect(hex(encoded.datagram) == hex(expected))
    }

    /// Pier's rule in another table's chain: appended (NLM_F_APPEND), or inserted before the
    /// rule with a handle (no NLM_F_APPEND, NFTA_RULE_POSITION), the way `nft insert rule ...
    /// position H` sends it.
    @Test func insertedRuleCarriesItsPositionAndNoAppendFlag() throws {
        let rule = Rule(family: .ip, table: "filter", chain: "FORWARD", comment: "c").markHasBits(0x0100_0000)
            .counter().verdict(.accept)
        let appended = try #require(encode { $0.add(rule) }.messages.first?.bytes)
        let inserted = try #require(encode { $0.insert(rule, before: 7) }.messages.first?.bytes)
        let flags = { (bytes: [UInt8]) in UInt16(bytes[6]) | UInt16(bytes[7]) << 8 }
        #expect(flags(appended) == createFlags | 0x800)
        #expect(flags(inserted) == createFlags)
        // NFTA_RULE_POSITION (6), a big-endian u64, after table and chain.
        let position: [UInt8] = [12, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 7]
        #expect(contains(inserted, position))
        #expect(!contains(appended, position))
        #expect(inserted.count == appended.count + position.count)
    }

    private func contains(_ bytes: [UInt8], _ part: [UInt8]) -> Bool {
        bytes.count >= part.count
            && (0...(bytes.count - part.count)).contains { Array(bytes[$0..<($0 + part.count)]) == part }
    }

    @Test func natBaseChainPrerouting() {
        let encoded = encode { $0.add(PierLayout.prerouting) }
        // NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK { HOOKNUM, PRIORITY }, NFTA_CHAIN_POLICY,
        // NFTA_CHAIN_TYPE: the attributes nft sends for
        // `{ type nat hook prerouting priority -100; policy accept; }`.
        let expected = nfnlMessage(
            type: nftType(NFTMessage.newChain), flags: createFlags, sequence: 2, family: 1,
            [
                .string(1, "pier"), .string(3, "prerouting"),
                .nest(4, [.be32(1, 0), .be32(2, signed: -100)]),
                .be32(5, 1), .string(7, "nat"),
            ])
        #expect(encoded.messages.count == 1)
        #expect(hex(encoded.messages[0].bytes) == hex(expected))
    }

    @Test func concatenatedMap() {
        let encoded = encode { $0.add(PierLayout.dnatMap) }
        // type inet_proto . inet_service : ipv4_addr . inet_service
        // key type (12 << 6) | 13, data type (7 << 6) | 13, both 8 bytes (two 4-byte registers).
        let expected = nfnlMessage(
            type: nftType(NFTMessage.newSet), flags: createFlags, sequence: 2, family: 1,
            [
                .string(1, "pier"), .string(2, "dnat_v4"),
                .be32(3, 0x8),  // NFT_SET_MAP
                .be32(4, 0x30d), .be32(5, 8), .be32(6, 0x1cd), .be32(7, 8),
                .be32(10, 1),  // NFTA_SET_ID
                // NFTA_SET_USERDATA: key and data byte order "invalid" (0), as nft stores for concatenations.
                .raw(13, [0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0]),
            ])
        #expect(hex(encoded.messages[0].bytes) == hex(expected))
    }

    @Test func elementWithComment() throws {
        let element = PierLayout.mapping(.udp, 54, to: "10.88.0.2", 80, owner: "c1/eth0")
        let encoded = encode { $0.addElements([element], to: PierLayout.dnatMap.path) }
        let expected = nfnlMessage(
            type: nftType(NFTMessage.newSetElement), flags: createFlags, sequence: 2, family: 1,
            [
                .string(2, "dnat_v4"), .string(1, "pier"),
                .nest(
                    3,
                    [
                        .nest(
                            1,
                            [
                                // udp . 54, each field padded to a 32-bit register
                                .value(1, [17, 0, 0, 0, 0x00, 0x36, 0, 0]),
                                // 10.88.0.2 . 80
                                .value(2, [10, 88, 0, 2, 0x00, 0x50, 0, 0]),
                                // NFTNL_UDATA_SET_ELEM_COMMENT (0), length 8, "c1/eth0\0"
                                .raw(6, [0, 8] + Array("c1/eth0".utf8) + [0]),
                            ])
                    ]),
            ])
        #expect(hex(encoded.messages[0].bytes) == hex(expected))
    }

    @Test func exclusiveElementAddAsksForEEXIST() {
        let element = PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "c1/eth0")
        let encoded = encode { $0.addElements([element], to: PierLayout.dnatMap.path, exclusive: true) }
        #expect(encoded.messages[0].bytes[6] == UInt8(createFlags & 0xff))
        #expect(encoded.messages[0].bytes[7] == UInt8((createFlags | 0x200) >> 8))  // NLM_F_EXCL
    }

    /// `meta l4proto { tcp, udp, sctp } fib daddr type local dnat ip to meta l4proto . th dport map @m`
    /// nft --debug=netlink:
    ///   [ meta load l4proto => reg 1 ]  [ lookup reg 1 set __set%d ]
    ///   [ fib daddr type => reg 1 ]     [ cmp eq reg 1 0x00000002 ]
    ///   [ meta load l4proto => reg 1 ]  [ payload load 2b @ transport header + 2 => reg 9 ]
    ///   [ lookup reg 1 set m dreg 1 ]   [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
    @Test func dnatMapRule() {
        let rule = Rule(family: .inet, table: "pier", chain: "prerouting")
            .match(.l4proto, in: [.tcp, .udp, .sctp])
            .fibDestinationIsLocal()
            .dnat(.ipv4, map: "m", key: [.l4proto, .transportDestinationPort])
        let encoded = encode { $0.add(rule) }
        #expect(encoded.messages.count == 3)

        // The anonymous set { tcp, udp, sctp }: flags ANONYMOUS | CONSTANT, key inet_proto (12), 1 byte,
        // id 1, NFTA_SET_DESC { SIZE 3 }, user data: key byte order host (1).
        let anonymousSet = nfnlMessage(
            type: nftType(NFTMessage.newSet), flags: createFlags, sequence: 2, family: 1,
            [
                .string(1, "pier"), .string(2, "__set%d"), .be32(3, 3), .be32(4, 12), .be32(5, 1), .be32(10, 1),
                .nest(9, [.be32(1, 3)]), .raw(13, [0, 4, 1, 0, 0, 0]),
            ])
        let anonymousElements = nfnlMessage(
            type: nftType(NFTMessage.newSetElement), flags: createFlags, sequence: 3, family: 1,
            [
                .string(2, "__set%d"), .be32(4, 1), .string(1, "pier"),
                // List entries are numbered 1, 2, 3 (nft does the same).
                .nest(
                    3,
                    zip(1..., [UInt8(6), 17, 132]).map { index, proto in .nest(UInt16(index), [.value(1, [proto])]) }),
            ])
        // NLM_F_APPEND (0x800) as nft uses for `add rule`.
        let ruleMessage = nfnlMessage(
            type: nftType(NFTMessage.newRule), flags: createFlags | 0x800, sequence: 4, family: 1,
            [
                .string(1, "pier"), .string(2, "prerouting"),
                .nest(
                    4,
                    [
                        .expr("meta", [.be32(2, 16), .be32(1, 1)]),
                        .expr("lookup", [.be32(2, 1), .string(1, "__set%d"), .be32(4, 1)]),
                        .expr("fib", [.be32(3, 2), .be32(2, 3), .be32(1, 1)]),
                        .expr("cmp", [.be32(1, 1), .be32(2, 0), .value(3, [2, 0, 0, 0])]),
                        .expr("meta", [.be32(2, 16), .be32(1, 1)]),
                        .expr("payload", [.be32(1, 9), .be32(2, 2), .be32(3, 2), .be32(4, 2)]),
                        // nft also sends NFTA_LOOKUP_SET_ID for a named set; the kernel resolves
                        // named sets by name first, so Pier leaves it out.
                        .expr("lookup", [.be32(2, 1), .be32(3, 1), .string(1, "m")]),
                        .expr("nat", [.be32(1, 1), .be32(2, 2), .be32(3, 1), .be32(5, 9)]),
                    ]),
            ])
        #expect(hex(encoded.messages[0].bytes) == hex(anonymousSet))
        #expect(hex(encoded.messages[1].bytes) == hex(anonymousElements))
        #expect(hex(encoded.messages[2].bytes) == hex(ruleMessage))
    }

    @Test func ruleCommentIsUserData() {
        let rule = Rule(family: .inet, table: "pier", chain: "postrouting", comment: "pier:masquerade-v4").masquerade()
        let encoded = encode { $0.add(rule) }
        let expected = nfnlMessage(
            type: nftType(NFTMessage.newRule), flags: createFlags | 0x800, sequence: 2, family: 1,
            [
                .string(1, "pier"), .string(2, "postrouting"),
                .raw(7, [0, 19] + Array("pier:masquerade-v4".utf8) + [0]),  // NFTA_RULE_USERDATA
                .nest(4, [.expr("masq", [])]),
            ])
        #expect(hex(encoded.messages[0].bytes) == hex(expected))
    }

    @Test func generationCheckedBatchBegin() {
        let encoded = encode({ $0.add(Table(family: .inet, name: "pier")) }, generation: 0x0102_0304)
        // NFNL_BATCH_GENID (1), u32 in network byte order.
        let expected = nfnlMessage(
            type: 0x10, flags: 0x1, sequence: 1, family: 0, resourceID: 10, [.raw(1, [1, 2, 3, 4])])
        #expect(hex(encoded.begin.bytes) == hex(expected))
        #expect(hex(encode { $0.add(Table(family: .inet, name: "pier")) }.begin.bytes) == hex(batchBegin(sequence: 1)))
    }

    @Test func intervalElementBecomesStartAndEnd() throws {
        let prefix = try #require(IPPrefix("10.88.0.0/16"))
        let encoded = encode {
            $0.addElements([SetElement(prefix: prefix, comment: "n1")], to: PierLayout.masqueradeSubnets.path)
        }
        let expected = nfnlMessage(
            type: nftType(NFTMessage.newSetElement), flags: createFlags, sequence: 2, family: 1,
            [
                .string(2, "masq_v4"), .string(1, "pier"),
                .nest(
                    3,
                    [
                        .nest(1, [.value(1, [10, 88, 0, 0]), .raw(6, [0, 3] + Array("n1".utf8) + [0])]),
                        // NFTA_SET_ELEM_FLAGS = NFT_SET_ELEM_INTERVAL_END, key = first address after the range
                        .nest(2, [.be32(3, 1), .value(1, [10, 89, 0, 0])]),
                    ]),
            ])
        #expect(hex(encoded.messages[0].bytes) == hex(expected))
    }
}
