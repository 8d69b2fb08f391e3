import NameService
import Testing

/// Wire format: byte-exact encodings, round trips, and hostile input that must be refused
/// without a crash.
struct DNSMessageTests {
    /// `dig +noedns web.dns.pier A` as the bytes a resolver sends (ID 0x1234, RD).
    static let webQuery: [UInt8] =
        [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
        + [3] + Array("web".utf8) + [3] + Array("dns".utf8) + [4] + Array("pier".utf8) + [0]
        + [0x00, 0x01, 0x00, 0x01]

    @Test func queryIsParsedFromItsBytes() throws {
        let message = try DNSMessage(parsing: Self.webQuery)
        #expect(message.id == 0x1234)
        #expect(message.recursionDesired && !message.isResponse && message.opcode == 0)
        #expect(message.questions == [DNSQuestion(name: dnsName("web.dns.pier"), type: DNSType.a)])
        #expect(message.answers.isEmpty && message.additionals.isEmpty && message.edns == nil)
        #expect(message.requesterUDPSize == 512)
    }

    @Test func queryIsEncodedByteForByte() {
        let message = DNSMessage(
            id: 0x1234, flags: DNSMessage.recursionDesiredFlag,
            questions: [DNSQuestion(name: dnsName("web.dns.pier."), type: DNSType.a)])
        #expect(message.encoded() == Self.webQuery)
    }

    @Test func answerNamesPointAtTheQuestion() throws {
        let name = dnsName("web.dns.pier")
        let message = DNSMessage(
            id: 7, flags: 0x8580, questions: [DNSQuestion(name: name, type: DNSType.a)],
            answers: [DNSRecord(name: name, type: DNSType.a, ttl: 5, data: [10, 88, 0, 2])])
        let bytes = message.encoded()
        // Header, question (14 + 4), then the answer: pointer 0xC00C, A, IN, TTL 5, length 4, data.
        #expect(
            Array(bytes[(12 + 18)...]) == [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 88, 0, 2])
        #expect(try DNSMessage(parsing: bytes) == message)
    }

    @Test func sharedSuffixesAreCompressed() throws {
        let message = DNSMessage(
            id: 1, questions: [DNSQuestion(name: dnsName("a.dns.pier"), type: DNSType.ptr)],
            answers: [DNSRecord(name: dnsName("b.dns.pier"), type: DNSType.a, ttl: 1, data: [1, 2, 3, 4])])
        let bytes = message.encoded()
        // "b" then a pointer to "dns.pier" at offset 12 + 2.
        #expect(Array(bytes[(12 + 16)..<(12 + 16 + 4)]) == [1, UInt8(ascii: "b"), 0xC0, 14])
        #expect(try DNSMessage(parsing: bytes) == message)
    }

    @Test func ednsPayloadSizeIsRead() throws {
        let query = DNSMessage(
            id: 9, questions: [DNSQuestion(name: dnsName("x"), type: DNSType.aaaa)],
            additionals: [.opt(payloadSize: 4096)])
        let parsed = try DNSMessage(parsing: query.encoded())
        #expect(parsed.edns == .opt(payloadSize: 4096))
        #expect(parsed.requesterUDPSize == 4096)
        // A size below 512 still means 512 (RFC 6891 §6.2.5).
        var small = query
        small.additionals = [.opt(payloadSize: 100)]
        #expect(try DNSMessage(parsing: small.encoded()).requesterUDPSize == 512)
    }

    @Test func oversizedMessageIsCutToATruncatedHeaderAndQuestion() throws {
        let name = dnsName("pool")
        let answers = (0..<40).map {
            DNSRecord(
                name: name, type: DNSType.aaaa, ttl: 5, data: [0xfd] + [UInt8](repeating: 0, count: 14) + [UInt8($0)])
        }
        let message = DNSMessage(
            id: 3, flags: 0x8400, questions: [DNSQuestion(name: name, type: DNSType.aaaa)], answers: answers,
            additionals: [.opt(payloadSize: 1232)])
        #expect(message.encoded().count > 512)
        let cut = try DNSMessage(parsing: message.encoded(limit: 512))
        #expect(cut.isTruncated && cut.answers.isEmpty)
        #expect(cut.questions == message.questions && cut.additionals == [.opt(payloadSize: 1232)])
        #expect(message.encoded(limit: 4096) == message.encoded())
    }

    @Test func forwardPointersAndLoopsAreRefused() {
        // A pointer at offset 12 to itself, and one pointing forward.
        let header: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        #expect(throws: DNSParseError.self) { try DNSMessage(parsing: header + [0xC0, 12, 0, 1, 0, 1]) }
        #expect(throws: DNSParseError.self) { try DNSMessage(parsing: header + [0xC0, 14, 0, 1, 0, 1, 0]) }
    }

    @Test func truncatedAndInconsistentMessagesAreRefused() {
        for length in 0..<Self.webQuery.count {
            #expect(throws: DNSParseError.self) { try DNSMessage(parsing: Array(Self.webQuery.prefix(length))) }
        }
        var extra = Self.webQuery
        extra.append(0)
        #expect(throws: DNSParseError.self) { try DNSMessage(parsing: extra) }
        var manyQuestions = Self.webQuery
        manyQuestions[4] = 0xFF
        #expect(throws: DNSParseError.self) { try DNSMessage(parsing: manyQuestions) }
        // A label longer than 63 bytes uses the reserved 0x40/0x80 label types.
        #expect(throws: DNSParseError.self) { try DNSMessage(parsing: Array(Self.webQuery.prefix(12)) + [0x40]) }
    }

    @Test func namesKeepTheRFCLimits() {
        #expect(DNSName(String(repeating: "a", count: 63)) != nil)
        #expect(DNSName(String(repeating: "a", count: 64)) == nil)
        #expect(DNSName("a..b") == nil)
        #expect(DNSName(Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".")) == nil)
        #expect(DNSName("Web.DNS.Pier.")?.lookupKey == "web.dns.pier")
        #expect(DNSName(".") == .root)
    }

    /// Thousands of random and mutated packets through the parser and the resolver: every one is
    /// refused, answered or ignored, never a trap; whatever parses encodes and parses again.
    @Test func randomAndMutatedPacketsNeverCrash() throws {
        var generator = SplitMix(seed: 0x5eed)
        let zone = ResolverTests.zone()
        let seeds: [[UInt8]] = [
            Self.webQuery,
            DNSMessage(
                id: 1, flags: 0x8180, questions: [DNSQuestion(name: dnsName("a.b.c"), type: DNSType.a)],
                answers: [DNSRecord(name: dnsName("a.b.c"), type: DNSType.a, ttl: 1, data: [1, 2, 3, 4])],
                additionals: [.opt(payloadSize: 1232)]
            ).encoded(),
        ]
        var parsed = 0
        for round in 0..<6000 {
            var packet: [UInt8]
            if round % 3 == 0 {
                packet = (0..<Int(generator.next() % 80)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                packet = seeds[round % seeds.count]
                for _ in 0..<(1 + Int(generator.next() % 4)) {
                    let index = Int(generator.next() % UInt64(packet.count))
                    switch generator.next() % 3 {
                    case 0: packet[index] = UInt8(truncatingIfNeeded: generator.next())
                    case 1: packet.removeSubrange(index...)
                    default: packet.insert(UInt8(truncatingIfNeeded: generator.next()), at: index)
                    }
                    if packet.isEmpty { break }
                }
            }
            if let message = try? DNSMessage(parsing: packet) {
                parsed += 1
                #expect(try DNSMessage(parsing: message.encoded()) == message)
            }
            for overUDP in [true, false] {
                if case .reply(let bytes) = Resolver.resolve(packet, zone: zone, overUDP: overUDP) {
                    #expect(bytes.count >= DNSMessage.headerSize)
                    if overUDP { #expect(bytes.count <= Resolver.maximumUDPSize) }
                }
            }
        }
        #expect(parsed > 100, "the mutations should leave some packets parseable")
    }
}

/// A small deterministic generator, so a failing fuzz case is reproducible.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
