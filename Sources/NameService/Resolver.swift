import IPAddressing

/// What the server does with one datagram or TCP message.
public enum Resolution: Sendable, Equatable {
    /// Send these bytes back.
    case reply([UInt8])
    /// Not ours: relay the query upstream (the caller answers SERVFAIL when it cannot).
    case forward(DNSMessage)
    /// Not a query (a response, or too short to answer): say nothing.
    case ignore
}

/// Answers a query from one network's zone. Pure: no sockets, no clock, so every rule is
/// unit-tested byte for byte.
///
/// - A container's name, alias or hostname, bare or under the zone's domain: its A/AAAA
///   records (ANY gives both; another type gives an empty NOERROR answer).
/// - The reverse name of a container address: PTR to its first name under the domain.
/// - Any other name under the domain: NXDOMAIN. Everything else is forwarded, except on an
///   internal network, which answers NXDOMAIN without asking anyone.
public enum Resolver {
    /// Short, because containers come and go and nothing here can invalidate a cache.
    public static let answerTTL: UInt32 = 5
    /// The largest UDP answer sent, whatever a client offers (the DNS flag day 2020 value).
    public static let maximumUDPSize = 1232

    /// `sharedZones`: the other networks of the asking container; a name unknown on the network
    /// asked is looked up there and answered with its address on that network, the one both
    /// containers share. `rotation`: where the list of several addresses starts (round robin).
    public static func resolve(
        _ packet: [UInt8], zone: NetworkZone, overUDP: Bool, sharedZones: [NetworkZone] = [], rotation: Int = 0
    ) -> Resolution {
        let query: DNSMessage
        do {
            query = try DNSMessage(parsing: packet)
        } catch {
            return formatError(for: packet)
        }
        if query.isResponse { return .ignore }
        guard query.opcode == 0 else { return .reply(encode(reply(to: query, code: .notImplemented), query, overUDP)) }
        guard query.questions.count == 1,
            query.edns == nil || query.additionals.count(where: { $0.type == DNSType.opt }) == 1
        else { return .reply(encode(reply(to: query, code: .formatError), query, overUDP)) }
        let question = query.questions[0]
        let key = question.name.lookupKey
        let isInternetClass = question.rawClass == DNSClass.internet || question.rawClass == DNSClass.any

        let holder = ([zone] + sharedZones).first { $0.addresses(of: key) != nil }
        if isInternetClass, let addresses = holder?.addresses(of: key) {
            var wanted = addresses.filter { address in
                switch question.type {
                case DNSType.a: address.family == .v4
                case DNSType.aaaa: address.family == .v6
                case DNSType.any: true
                default: false
                }
            }
            if wanted.count > 1 {
                let start = rotation % wanted.count
                wanted = Array(wanted[start...] + wanted[..<start])
            }
            let answers = wanted.map {
                DNSRecord(
                    name: question.name, type: $0.family == .v4 ? DNSType.a : DNSType.aaaa, ttl: answerTTL,
                    data: $0.bytes)
            }
            return .reply(encode(reply(to: query, code: .noError, answers: answers, zone: zone), query, overUDP))
        }
        if isInternetClass,
            let targets = ([zone] + sharedZones).lazy.compactMap({ $0.pointerTargets(of: key) }).first
        {
            let answers =
                question.type == DNSType.ptr || question.type == DNSType.any
                ? targets.compactMap { target in
                    DNSName(target).map {
                        DNSRecord(name: question.name, type: DNSType.ptr, ttl: answerTTL, data: $0.wireBytes)
                    }
                } : []
            return .reply(encode(reply(to: query, code: .noError, answers: answers, zone: zone), query, overUDP))
        }
        if zone.isAuthoritative(for: key) || zone.isInternal {
            return .reply(encode(reply(to: query, code: .nameError, zone: zone), query, overUDP))
        }
        return .forward(query)
    }

    /// An answer to `query`: the question echoed, RD copied, AA set for what the zone owns, RA
    /// unless the network is internal, and an OPT record when the query had one.
    public static func reply(
        to query: DNSMessage, code: DNSResponseCode, answers: [DNSRecord] = [], zone: NetworkZone? = nil
    ) -> DNSMessage {
        var flags = DNSMessage.responseFlag | UInt16(query.opcode) << 11 | UInt16(code.rawValue)
        flags |= query.flags & DNSMessage.recursionDesiredFlag
        if let zone {
            flags |= DNSMessage.authoritativeFlag
            if !zone.isInternal { flags |= DNSMessage.recursionAvailableFlag }
        } else {
            flags |= DNSMessage.recursionAvailableFlag
        }
        let additionals = query.edns == nil ? [] : [DNSRecord.opt(payloadSize: UInt16(maximumUDPSize))]
        return DNSMessage(
            id: query.id, flags: flags, questions: query.questions, answers: answers, additionals: additionals)
    }

    /// Over UDP, an answer longer than the client takes is cut to a TC answer (RFC 1035
    /// §4.2.1, RFC 6891 §6.2.5); over TCP it goes whole.
    public static func encode(_ message: DNSMessage, _ query: DNSMessage, _ overUDP: Bool) -> [UInt8] {
        message.encoded(limit: overUDP ? udpLimit(for: query) : nil)
    }

    public static func udpLimit(for query: DNSMessage) -> Int {
        min(query.requesterUDPSize, maximumUDPSize)
    }

    /// FORMERR for a message whose header is readable and says "query"; silence otherwise
    /// (answering garbage invites reflection).
    static func formatError(for packet: [UInt8]) -> Resolution {
        guard packet.count >= DNSMessage.headerSize, packet[2] & 0x80 == 0 else { return .ignore }
        let id = UInt16(packet[0]) << 8 | UInt16(packet[1])
        let opcode = UInt16(packet[2] >> 3 & 0xF)
        let flags = DNSMessage.responseFlag | opcode << 11 | UInt16(DNSResponseCode.formatError.rawValue)
        return .reply(DNSMessage(id: id, flags: flags).encoded())
    }

    /// SERVFAIL for a query that could not be forwarded (no upstream, or none answered).
    public static func serverFailure(for query: DNSMessage, overUDP: Bool) -> [UInt8] {
        encode(reply(to: query, code: .serverFailure), query, overUDP)
    }
}
