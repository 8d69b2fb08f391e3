import IPAddressing
import NameService
import Testing

/// The resolver's answers from a zone, byte-level where the bytes matter.
struct ResolverTests {
    static func zone(isInternal: Bool = false) -> NetworkZone {
        NetworkZone(
            network: "front",
            records: [
                NameRecord(
                    network: "front", containerID: "c1", ifName: "eth0", names: ["Web", "www", "web-host"],
                    addresses: [address("10.88.0.2"), address("fd00:88::2")],
                    gateways: [address("10.88.0.1"), address("fd00:88::1")], domainName: "dns.pier",
                    isInternal: isInternal),
                NameRecord(
                    network: "front", containerID: "c2", ifName: "eth0", names: ["db", "www"],
                    addresses: [address("10.88.0.3")], gateways: [address("10.88.0.1")],
                    domainName: "dns.pier"),
            ])
    }

    static func query(_ name: String, _ type: UInt16, id: UInt16 = 0xBEEF, edns: UInt16? = nil) -> [UInt8] {
        DNSMessage(
            id: id, flags: DNSMessage.recursionDesiredFlag,
            questions: [DNSQuestion(name: dnsName(name), type: type)],
            additionals: edns.map { [.opt(payloadSize: $0)] } ?? []
        ).encoded()
    }

    static func answer(_ name: String, _ type: UInt16, zone: NetworkZone = zone(), overUDP: Bool = true) throws
        -> DNSMessage
    {
        guard case .reply(let bytes) = Resolver.resolve(query(name, type), zone: zone, overUDP: overUDP) else {
            Issue.record("no reply for \(name)")
            return DNSMessage(id: 0)
        }
        return try DNSMessage(parsing: bytes)
    }

    static func addresses(_ message: DNSMessage) -> [String] {
        message.answers.compactMap { IPAddress(bytes: $0.data)?.description }
    }

    @Test func namesAliasesAndHostnamesAnswerBareAndUnderTheDomain() throws {
        for name in ["web", "WEB", "web.dns.pier", "web-host", "web-host.dns.pier."] {
            let reply = try Self.answer(name, DNSType.a)
            #expect(reply.responseCode == .noError)
            #expect(Self.addresses(reply) == ["10.88.0.2"], "\(name)")
            #expect(reply.flags & DNSMessage.authoritativeFlag != 0)
            #expect(reply.answers.allSatisfy { $0.ttl == Resolver.answerTTL })
        }
        #expect(Self.addresses(try Self.answer("web", DNSType.aaaa)) == ["fd00:88::2"])
        #expect(Self.addresses(try Self.answer("web", DNSType.any)) == ["10.88.0.2", "fd00:88::2"])
        // A shared alias answers every holder's address.
        #expect(Self.addresses(try Self.answer("www", DNSType.a)) == ["10.88.0.2", "10.88.0.3"])
    }

    @Test func replyEchoesTheQuestionAsSentWithItsIDAndFlags() throws {
        let query = Self.query("wEb.Dns.Pier", DNSType.a, id: 0x0102)
        guard case .reply(let bytes) = Resolver.resolve(query, zone: Self.zone(), overUDP: true) else {
            Issue.record("no reply")
            return
        }
        // ID, QR|AA|RD, RA, one question, one answer; the question's bytes unchanged (0x20 case kept).
        #expect(Array(bytes.prefix(12)) == [0x01, 0x02, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 0])
        #expect(Array(bytes[12..<query.count]) == Array(query[12...]))
        #expect(Array(bytes[query.count...]) == [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 88, 0, 2])
    }

    @Test func severalAddressesRotateWithTheRotationGiven() throws {
        func order(_ rotation: Int) throws -> [String] {
            guard
                case .reply(let bytes) = Resolver.resolve(
                    Self.query("www", DNSType.a), zone: Self.zone(), overUDP: true, rotation: rotation)
            else { return [] }
            return Self.addresses(try DNSMessage(parsing: bytes))
        }
        #expect(try order(0) == ["10.88.0.2", "10.88.0.3"])
        #expect(try order(1) == ["10.88.0.3", "10.88.0.2"])
        #expect(try order(2) == ["10.88.0.2", "10.88.0.3"])
    }

    @Test func aNameOfTheAskersOtherNetworkAnswersWithTheAddressThere() throws {
        let back = NetworkZone(
            network: "back",
            records: [
                NameRecord(
                    network: "back", containerID: "c9", ifName: "eth0", names: ["store"],
                    addresses: [address("10.99.0.9")], gateways: [address("10.99.0.1")], domainName: "dns.pier"),
                NameRecord(
                    network: "back", containerID: "c1", ifName: "eth1", names: ["Web"],
                    addresses: [address("10.99.0.2")], gateways: [address("10.99.0.1")], domainName: "dns.pier"),
            ])
        // Unknown on `front`: found on the shared network, with its address there.
        let reply = try DNSMessage(
            parsing: try #require(
                {
                    if case .reply(let bytes) = Resolver.resolve(
                        Self.query("store", DNSType.a), zone: Self.zone(), overUDP: true, sharedZones: [back])
                    {
                        return bytes
                    }
                    return nil
                }()))
        #expect(Self.addresses(reply) == ["10.99.0.9"])
        // A name on both networks answers with the network asked.
        let web = try DNSMessage(
            parsing: try #require(
                {
                    if case .reply(let bytes) = Resolver.resolve(
                        Self.query("web", DNSType.a), zone: Self.zone(), overUDP: true, sharedZones: [back])
                    {
                        return bytes
                    }
                    return nil
                }()))
        #expect(Self.addresses(web) == ["10.88.0.2"])
        // Without the shared zone (an asker on `front` only) it is not ours: forwarded.
        #expect(Resolver.resolve(Self.query("store", DNSType.a), zone: Self.zone(), overUDP: true).isForward)
        #expect(Self.zone().containerByAddress[address("10.88.0.3")] == "c2")
    }

    @Test func knownNameWithoutRecordsOfTheTypeIsAnEmptyAnswer() throws {
        let reply = try Self.answer("db", DNSType.aaaa)
        #expect(reply.responseCode == .noError && reply.answers.isEmpty)
        #expect(try Self.answer("db", DNSType.mx).answers.isEmpty)
    }

    @Test func unknownNameInTheDomainIsNXDOMAIN() throws {
        let reply = try Self.answer("other.dns.pier", DNSType.a)
        #expect(reply.responseCode == .nameError && reply.flags & DNSMessage.authoritativeFlag != 0)
    }

    @Test func otherNamesAreForwardedExceptOnInternalNetworks() throws {
        guard
            case .forward(let query) = Resolver.resolve(
                Self.query("example.com", DNSType.a), zone: Self.zone(), overUDP: true)
        else {
            Issue.record("not forwarded")
            return
        }
        #expect(query.questions.first?.name == DNSName("example.com"))
        let isolated = try Self.answer("example.com", DNSType.a, zone: Self.zone(isInternal: true))
        #expect(isolated.responseCode == .nameError)
        #expect(isolated.flags & DNSMessage.recursionAvailableFlag == 0)
        // Reverse names of addresses that are not containers' are forwarded too.
        guard
            case .forward = Resolver.resolve(
                Self.query("9.0.88.10.in-addr.arpa", DNSType.ptr), zone: Self.zone(), overUDP: true)
        else {
            Issue.record("reverse name not forwarded")
            return
        }
    }

    @Test func containerAddressesHavePointerRecords() throws {
        let v4 = try Self.answer("2.0.88.10.in-addr.arpa", DNSType.ptr)
        #expect(v4.answers.map(\.data) == [dnsName("web.dns.pier").wireBytes])
        let reverse6 = NetworkZone.reverseName(address("fd00:88::2"))
        #expect(reverse6 == "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.8.0.0.0.0.d.f.ip6.arpa")
        #expect(try Self.answer(reverse6, DNSType.ptr).answers.map(\.data) == [dnsName("web.dns.pier").wireBytes])
    }

    @Test func bigAnswersAreTruncatedOverUDPAndWholeOverTCP() throws {
        let records = (0..<30).map { index in
            NameRecord(
                network: "n", containerID: "c\(index)", ifName: "eth0", names: ["c\(index)", "pool"],
                addresses: [address("fd00::\(index + 2)")], gateways: [address("fd00::1")], domainName: "dns.pier"
            )
        }
        let zone = NetworkZone(network: "n", records: records)
        let udp = try Self.answer("pool", DNSType.aaaa, zone: zone, overUDP: true)
        #expect(udp.isTruncated && udp.answers.isEmpty)
        let tcp = try Self.answer("pool", DNSType.aaaa, zone: zone, overUDP: false)
        #expect(!tcp.isTruncated && tcp.answers.count == 30)
        // With EDNS0 the client's bigger buffer is used (up to 1232 bytes).
        guard
            case .reply(let bytes) = Resolver.resolve(
                Self.query("pool", DNSType.aaaa, edns: 4096), zone: zone, overUDP: true)
        else { return }
        let edns = try DNSMessage(parsing: bytes)
        #expect(!edns.isTruncated && edns.answers.count == 30 && bytes.count <= 1232)
        #expect(edns.edns == .opt(payloadSize: 1232))
    }

    @Test func malformedQueriesGetFORMERROrSilence() throws {
        // A readable header asking a query: FORMERR with its ID.
        let broken: [UInt8] = [0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3F]
        guard case .reply(let bytes) = Resolver.resolve(broken, zone: Self.zone(), overUDP: true) else {
            Issue.record("no FORMERR")
            return
        }
        #expect(bytes == [0xAB, 0xCD, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(Resolver.resolve([1, 2, 3], zone: Self.zone(), overUDP: true) == .ignore)
        // A response is never answered (no reflection loops).
        var response = Self.query("web", DNSType.a)
        response[2] |= 0x80
        #expect(Resolver.resolve(response, zone: Self.zone(), overUDP: true) == .ignore)
        // Two questions: FORMERR; a non-zero opcode: NOTIMP.
        var two = DNSMessage(
            id: 5, questions: [DNSQuestion(name: dnsName("a"), type: 1), DNSQuestion(name: dnsName("b"), type: 1)])
        guard case .reply(let formerr) = Resolver.resolve(two.encoded(), zone: Self.zone(), overUDP: true) else {
            return
        }
        #expect(try DNSMessage(parsing: formerr).responseCode == .formatError)
        two.questions.removeLast()
        two.flags = 2 << 11
        guard case .reply(let notimp) = Resolver.resolve(two.encoded(), zone: Self.zone(), overUDP: true) else {
            return
        }
        #expect(try DNSMessage(parsing: notimp).responseCode == .notImplemented)
    }
}

extension Resolution {
    var isForward: Bool {
        if case .forward = self { return true }
        return false
    }
}
