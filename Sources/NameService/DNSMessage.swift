/// DNS messages as RFC 1035 lays them out: a 12-byte header, questions, then answer, authority
/// and additional records. Parsing never traps on hostile input: every read is bounds-checked,
/// compression pointers must point backwards (so they cannot loop) and names keep the RFC's
/// limits (63-byte labels, 255-byte names).
public struct DNSMessage: Sendable, Equatable {
    public var id: UInt16
    /// QR, opcode, AA, TC, RD, RA, Z and the response code, as on the wire.
    public var flags: UInt16
    public var questions: [DNSQuestion]
    public var answers: [DNSRecord]
    public var authorities: [DNSRecord]
    public var additionals: [DNSRecord]

    public init(
        id: UInt16, flags: UInt16 = 0, questions: [DNSQuestion] = [], answers: [DNSRecord] = [],
        authorities: [DNSRecord] = [], additionals: [DNSRecord] = []
    ) {
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    public static let headerSize = 12
    /// The largest UDP answer without EDNS0 (RFC 1035 §4.2.1).
    public static let classicUDPSize = 512

    // Header flag bits.
    public static let responseFlag: UInt16 = 0x8000
    public static let authoritativeFlag: UInt16 = 0x0400
    public static let truncatedFlag: UInt16 = 0x0200
    public static let recursionDesiredFlag: UInt16 = 0x0100
    public static let recursionAvailableFlag: UInt16 = 0x0080

    public var isResponse: Bool { flags & Self.responseFlag != 0 }
    public var opcode: UInt8 { UInt8((flags >> 11) & 0xF) }
    public var isTruncated: Bool { flags & Self.truncatedFlag != 0 }
    public var recursionDesired: Bool { flags & Self.recursionDesiredFlag != 0 }
    public var responseCode: DNSResponseCode { DNSResponseCode(rawValue: UInt8(flags & 0xF)) }

    /// The EDNS0 OPT pseudo-record of the additional section, if any.
    public var edns: DNSRecord? { additionals.first { $0.type == DNSType.opt } }

    /// The UDP payload a requester can take: its EDNS0 size (never below 512), else 512.
    public var requesterUDPSize: Int {
        guard let edns else { return Self.classicUDPSize }
        return max(Self.classicUDPSize, Int(edns.rawClass))
    }

    public init(parsing bytes: [UInt8]) throws(DNSParseError) {
        var reader = DNSReader(bytes)
        id = try reader.u16()
        flags = try reader.u16()
        let counts = [try reader.u16(), try reader.u16(), try reader.u16(), try reader.u16()]
        // Each question needs at least 5 bytes and each record 11, so counts beyond what the
        // message can hold are refused before any array grows.
        guard Int(counts[0]) * 5 <= reader.remaining else {
            throw DNSParseError("question count \(counts[0]) exceeds the message")
        }
        questions = []
        for _ in 0..<counts[0] {
            questions.append(DNSQuestion(name: try reader.name(), type: try reader.u16(), rawClass: try reader.u16()))
        }
        var sections: [[DNSRecord]] = []
        for count in counts.dropFirst() {
            guard Int(count) * 11 <= reader.remaining else {
                throw DNSParseError("record count \(count) exceeds the message")
            }
            var records: [DNSRecord] = []
            for _ in 0..<count {
                let name = try reader.name()
                let type = try reader.u16()
                let rawClass = try reader.u16()
                let ttl = try reader.u32()
                let length = Int(try reader.u16())
                records.append(
                    DNSRecord(name: name, type: type, rawClass: rawClass, ttl: ttl, data: try reader.bytes(length)))
            }
            sections.append(records)
        }
        answers = sections[0]
        authorities = sections[1]
        additionals = sections[2]
        guard reader.remaining == 0 else { throw DNSParseError("\(reader.remaining) bytes after the last record") }
    }

    /// The wire form, names compressed. With `limit`, a message that does not fit is cut to its
    /// header and questions with TC set (and its OPT record kept), as RFC 2181 §9 asks, so the
    /// client retries over TCP instead of using a partial answer.
    public func encoded(limit: Int? = nil) -> [UInt8] {
        let full = encodedSections(answers: answers, authorities: authorities, additionals: additionals, flags: flags)
        guard let limit, full.count > limit else { return full }
        let opt = additionals.filter { $0.type == DNSType.opt }
        return encodedSections(answers: [], authorities: [], additionals: opt, flags: flags | Self.truncatedFlag)
    }

    private func encodedSections(
        answers: [DNSRecord], authorities: [DNSRecord], additionals: [DNSRecord], flags: UInt16
    ) -> [UInt8] {
        var writer = DNSWriter()
        writer.u16(id)
        writer.u16(flags)
        for count in [questions.count, answers.count, authorities.count, additionals.count] {
            writer.u16(UInt16(clamping: count))
        }
        for question in questions {
            writer.name(question.name)
            writer.u16(question.type)
            writer.u16(question.rawClass)
        }
        for record in answers + authorities + additionals {
            writer.name(record.name)
            writer.u16(record.type)
            writer.u16(record.rawClass)
            writer.u32(record.ttl)
            writer.u16(UInt16(clamping: record.data.count))
            writer.bytes.append(contentsOf: record.data.prefix(Int(UInt16.max)))
        }
        return writer.bytes
    }
}

/// Record types Pier's name service answers or recognises.
public enum DNSType {
    public static let a: UInt16 = 1
    public static let ns: UInt16 = 2
    public static let cname: UInt16 = 5
    public static let soa: UInt16 = 6
    public static let ptr: UInt16 = 12
    public static let mx: UInt16 = 15
    public static let txt: UInt16 = 16
    public static let aaaa: UInt16 = 28
    public static let opt: UInt16 = 41
    public static let any: UInt16 = 255
}

public enum DNSClass {
    public static let internet: UInt16 = 1
    public static let any: UInt16 = 255
}

public struct DNSResponseCode: RawRepresentable, Sendable, Equatable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0xF }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)

    public var description: String {
        ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"].indices.contains(Int(rawValue))
            ? ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"][Int(rawValue)]
            : "RCODE\(rawValue)"
    }
}

/// A domain name as its labels (raw bytes, case kept); the root is no labels.
public struct DNSName: Sendable, Hashable, CustomStringConvertible {
    public var labels: [[UInt8]]

    public init(labels: [[UInt8]]) { self.labels = labels }

    /// From dotted text (a trailing dot is optional); nil when a label is empty or too long or
    /// the whole name exceeds 255 bytes on the wire.
    public init?(_ text: String) {
        let trimmed = text.hasSuffix(".") ? String(text.dropLast()) : text
        if trimmed.isEmpty {
            labels = []
            return
        }
        var labels: [[UInt8]] = []
        for part in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(part.utf8)
            guard !bytes.isEmpty, bytes.count <= 63 else { return nil }
            labels.append(bytes)
        }
        guard labels.reduce(1, { $0 + $1.count + 1 }) <= 255 else { return nil }
        self.labels = labels
    }

    public static let root = DNSName(labels: [])

    /// Lower-case dotted form without the trailing dot: the key names are looked up by (DNS
    /// compares names case-insensitively in ASCII).
    public var lookupKey: String {
        labels.map { String(decoding: $0.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self) }
            .joined(separator: ".")
    }

    public var description: String {
        labels.isEmpty ? "." : labels.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".") + "."
    }

    /// The uncompressed wire form, for record data such as a PTR target.
    public var wireBytes: [UInt8] {
        var bytes: [UInt8] = []
        for label in labels {
            bytes.append(UInt8(label.count))
            bytes += label
        }
        bytes.append(0)
        return bytes
    }
}

public struct DNSQuestion: Sendable, Equatable {
    public var name: DNSName
    public var type: UInt16
    public var rawClass: UInt16

    public init(name: DNSName, type: UInt16, rawClass: UInt16 = DNSClass.internet) {
        self.name = name
        self.type = type
        self.rawClass = rawClass
    }
}

/// A resource record; `data` is RDATA as on the wire (names inside it are not decompressed,
/// which only matters for records Pier relays, and those it relays byte for byte).
public struct DNSRecord: Sendable, Equatable {
    public var name: DNSName
    public var type: UInt16
    /// The class, or for OPT the requester's UDP payload size.
    public var rawClass: UInt16
    public var ttl: UInt32
    public var data: [UInt8]

    public init(name: DNSName, type: UInt16, rawClass: UInt16 = DNSClass.internet, ttl: UInt32, data: [UInt8]) {
        self.name = name
        self.type = type
        self.rawClass = rawClass
        self.ttl = ttl
        self.data = data
    }

    /// An EDNS0 OPT pseudo-record offering `payloadSize` bytes over UDP (RFC 6891).
    public static func opt(payloadSize: UInt16) -> DNSRecord {
        DNSRecord(name: .root, type: DNSType.opt, rawClass: payloadSize, ttl: 0, data: [])
    }
}

public struct DNSParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "malformed DNS message: \(reason)" }
}

/// Bounds-checked reads from a message.
struct DNSReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func u8() throws(DNSParseError) -> UInt8 {
        guard offset < bytes.count else { throw DNSParseError("message ends at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() throws(DNSParseError) -> UInt16 {
        let high = try u8()
        return UInt16(high) << 8 | UInt16(try u8())
    }

    mutating func u32() throws(DNSParseError) -> UInt32 {
        let high = try u16()
        return UInt32(high) << 16 | UInt32(try u16())
    }

    mutating func bytes(_ count: Int) throws(DNSParseError) -> [UInt8] {
        guard count <= remaining else { throw DNSParseError("\(count) bytes wanted at \(offset), \(remaining) left") }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// A possibly compressed name; the reader ends after the name's first occurrence.
    mutating func name() throws(DNSParseError) -> DNSName {
        var labels: [[UInt8]] = []
        var wireLength = 1
        var position = offset
        var resume: Int?
        while true {
            guard position < bytes.count else { throw DNSParseError("name runs past the message") }
            let length = bytes[position]
            switch length & 0xC0 {
            case 0:
                if length == 0 {
                    offset = resume ?? position + 1
                    return DNSName(labels: labels)
                }
                let end = position + 1 + Int(length)
                guard end <= bytes.count else { throw DNSParseError("label runs past the message") }
                wireLength += Int(length) + 1
                guard wireLength <= 255 else { throw DNSParseError("name longer than 255 bytes") }
                labels.append(Array(bytes[position + 1..<end]))
                position = end
            case 0xC0:
                guard position + 1 < bytes.count else { throw DNSParseError("pointer runs past the message") }
                let target = Int(length & 0x3F) << 8 | Int(bytes[position + 1])
                // Only backwards: every jump lands strictly earlier, so a chain of them ends.
                guard target < position else { throw DNSParseError("compression pointer does not point back") }
                if resume == nil { resume = position + 2 }
                position = target
            default:
                throw DNSParseError("unsupported label type 0x\(String(length, radix: 16))")
            }
        }
    }
}

/// Appends wire data, compressing names against earlier ones (RFC 1035 §4.1.4).
struct DNSWriter {
    var bytes: [UInt8] = []
    /// Offsets of names written so far, by their exact wire bytes: case is kept (a client
    /// may check that its 0x20-randomised question comes back as sent).
    private var offsets: [[UInt8]: Int] = [:]

    mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xFF))
    }

    mutating func u32(_ value: UInt32) {
        u16(UInt16(value >> 16))
        u16(UInt16(value & 0xFFFF))
    }

    mutating func name(_ name: DNSName) {
        for index in name.labels.indices {
            let suffix = DNSName(labels: Array(name.labels[index...])).wireBytes
            if let earlier = offsets[suffix] {
                u16(0xC000 | UInt16(earlier))
                return
            }
            // A pointer holds 14 bits of offset.
            if bytes.count < 0x4000 { offsets[suffix] = bytes.count }
            bytes.append(UInt8(name.labels[index].count))
            bytes += name.labels[index]
        }
        bytes.append(0)
    }
}
