// Plain-Swift netlink framing. Replies are parsed here rather than through mnl_cb_run so
// the same code runs against the recording transport in unit tests, and so errors can be
// mapped back to the exact message (sequence number) that caused them.

let netlinkHeaderLength = 16
let nfgenmsgLength = 4

let nlmsgError: UInt16 = 2
let nlmsgDone: UInt16 = 3

let nlmFRequest: UInt16 = 0x1
let nlmFMulti: UInt16 = 0x2
let nlmFAck: UInt16 = 0x4
let nlmFEcho: UInt16 = 0x8
let nlmFDumpIntr: UInt16 = 0x10
let nlmFDump: UInt16 = 0x300
let nlmFReplace: UInt16 = 0x100
let nlmFExcl: UInt16 = 0x200
let nlmFCreate: UInt16 = 0x400
let nlmFAckTLVs: UInt16 = 0x200

/// One netlink message as received: header fields plus the payload after the 16-byte header.
struct NetlinkMessage: Equatable {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var portID: UInt32
    /// The whole message, header included (what libnftnl's parsers want).
    var bytes: [UInt8]

    var payload: ArraySlice<UInt8> { bytes[netlinkHeaderLength...] }

    /// Splits a datagram into messages; stops at the first malformed length.
    static func split(_ buffer: [UInt8]) -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        var offset = 0
        while offset + netlinkHeaderLength <= buffer.count {
            let length = Int(buffer.readU32(at: offset))
            guard length >= netlinkHeaderLength, offset + length <= buffer.count else { break }
            messages.append(
                NetlinkMessage(
                    type: buffer.readU16(at: offset + 4), flags: buffer.readU16(at: offset + 6),
                    sequence: buffer.readU32(at: offset + 8), portID: buffer.readU32(at: offset + 12),
                    bytes: Array(buffer[offset..<(offset + length)])))
            offset += align4(length)
        }
        return messages
    }

    /// For NLMSG_ERROR: the (negative) errno, 0 for an ACK, and the extended-ACK text if any.
    var errorCode: (code: Int32, message: String?)? {
        guard type == nlmsgError, bytes.count >= netlinkHeaderLength + 4 else { return nil }
        let code = Int32(bitPattern: bytes.readU32(at: netlinkHeaderLength))
        var text: String?
        if flags & nlmFAckTLVs != 0, bytes.count >= netlinkHeaderLength + 4 + netlinkHeaderLength {
            // With NETLINK_CAP_ACK only the original header is echoed; TLVs follow it.
            let echoedLength = Int(bytes.readU32(at: netlinkHeaderLength + 4))
            let start = netlinkHeaderLength + 4 + (flags & 0x100 != 0 ? netlinkHeaderLength : echoedLength)
            for attribute in NetlinkAttribute.parse(bytes, from: start) where attribute.type == 1 {
                text = attribute.stringValue
            }
        }
        return (code, text)
    }
}

/// A netlink attribute (type without the nested/byte-order flag bits, and its value).
struct NetlinkAttribute: Equatable {
    var type: UInt16
    var value: [UInt8]

    static func parse(_ bytes: [UInt8], from start: Int, to end: Int? = nil) -> [NetlinkAttribute] {
        var result: [NetlinkAttribute] = []
        var offset = start
        let limit = min(end ?? bytes.count, bytes.count)
        while offset + 4 <= limit {
            let length = Int(bytes.readU16(at: offset))
            guard length >= 4, offset + length <= limit else { break }
            result.append(
                NetlinkAttribute(
                    type: bytes.readU16(at: offset + 2) & 0x3fff, value: Array(bytes[(offset + 4)..<(offset + length)]))
            )
            offset += align4(length)
        }
        return result
    }

    var nested: [NetlinkAttribute] { NetlinkAttribute.parse(value, from: 0) }
    var bigEndianU16: UInt16 { value.count >= 2 ? UInt16(value[0]) << 8 | UInt16(value[1]) : 0 }
    var bigEndianU32: UInt32 { value.count >= 4 ? value.readBigEndianU32(at: 0) : 0 }
    var u8: UInt8 { value.first ?? 0 }
    var stringValue: String {
        String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// Builds netlink messages in plain Swift (conntrack requests and test fixtures).
struct NetlinkMessageWriter {
    private(set) var bytes: [UInt8] = []
    private var nestStarts: [Int] = []

    init(type: UInt16, flags: UInt16, sequence: UInt32, family: UInt8, resourceID: UInt16 = 0) {
        bytes.appendU32(0)
        bytes.appendU16(type)
        bytes.appendU16(flags)
        bytes.appendU32(sequence)
        bytes.appendU32(0)
        // nfgenmsg: family, version NFNETLINK_V0, resource id in network order.
        bytes += [family, 0, UInt8(resourceID >> 8), UInt8(resourceID & 0xff)]
        finish()
    }

    mutating func put(_ type: UInt16, _ value: [UInt8]) {
        bytes.appendU16(UInt16(4 + value.count))
        bytes.appendU16(type)
        bytes += value
        bytes += [UInt8](repeating: 0, count: align4(value.count) - value.count)
        finish()
    }

    mutating func beginNest(_ type: UInt16) {
        nestStarts.append(bytes.count)
        bytes.appendU16(0)
        bytes.appendU16(type | 0x8000)  // NLA_F_NESTED
    }

    mutating func endNest() {
        guard let start = nestStarts.popLast() else { return }
        let length = UInt16(bytes.count - start)
        bytes[start] = UInt8(length & 0xff)
        bytes[start + 1] = UInt8(length >> 8)
        finish()
    }

    private mutating func finish() {
        let length = UInt32(bytes.count)
        withUnsafeBytes(of: length.littleEndian) { bytes.replaceSubrange(0..<4, with: $0) }
    }
}

func align4(_ value: Int) -> Int { (value + 3) & ~3 }

extension Array where Element == UInt8 {
    /// Netlink headers are in host byte order (little-endian on every Pier target).
    func readU16(at offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func readU32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }
    func readBigEndianU32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8
            | UInt32(self[offset + 3])
    }
    mutating func appendU16(_ value: UInt16) { self += [UInt8(value & 0xff), UInt8(value >> 8)] }
    mutating func appendU32(_ value: UInt32) {
        self += [UInt8(value & 0xff), UInt8((value >> 8) & 0xff), UInt8((value >> 16) & 0xff), UInt8(value >> 24)]
    }
}
