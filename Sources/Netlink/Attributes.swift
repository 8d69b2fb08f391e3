import IPAddressing

/// One netlink message from a reply, copied out of the datagram so nothing points into a
/// receive buffer after it is reused.
struct NetlinkMessage: Equatable {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var portID: UInt32
    var payload: [UInt8]

    static let headerLength = 16

    /// Splits a datagram into messages. Every length is checked against what is left, so a
    /// malformed or truncated reply becomes an error rather than an out-of-bounds read.
    static func split(_ datagram: [UInt8]) -> [NetlinkMessage]? {
        var messages: [NetlinkMessage] = []
        var offset = 0
        while datagram.count - offset >= headerLength {
            let length = Int(readU32(datagram, offset))
            guard length >= headerLength, length <= datagram.count - offset else { return nil }
            messages.append(
                NetlinkMessage(
                    type: readU16(datagram, offset + 4),
                    flags: readU16(datagram, offset + 6),
                    sequence: readU32(datagram, offset + 8),
                    portID: readU32(datagram, offset + 12),
                    payload: Array(datagram[(offset + headerLength)..<(offset + length)])))
            offset += align(length)
        }
        return messages
    }
}

/// Attributes of one level, by type (NLA_F_NESTED and NLA_F_NET_BYTEORDER masked off).
/// The last occurrence wins, except through `all(_:)`, which keeps repeats in order.
struct Attributes {
    private(set) var entries: [(type: UInt16, value: [UInt8])] = []

    /// Parses attributes from `bytes` starting at `offset` (after the family header).
    init(_ bytes: [UInt8], from offset: Int = 0) {
        var position = offset
        while bytes.count - position >= 4 {
            let length = Int(readU16(bytes, position))
            let type = readU16(bytes, position + 2) & 0x3fff
            // A short or overlong attribute ends parsing: what came before is still usable.
            guard length >= 4, length <= bytes.count - position else { break }
            entries.append((type, Array(bytes[(position + 4)..<(position + length)])))
            position += align(length)
        }
    }

    subscript(type: UInt16) -> [UInt8]? { entries.last { $0.type == type }?.value }

    func all(_ type: UInt16) -> [[UInt8]] { entries.filter { $0.type == type }.map(\.value) }

    func nested(_ type: UInt16) -> Attributes? { self[type].map { Attributes($0) } }

    func u8(_ type: UInt16) -> UInt8? { self[type].flatMap { $0.first } }
    func u16(_ type: UInt16) -> UInt16? { self[type].flatMap { $0.count >= 2 ? readU16($0, 0) : nil } }
    func u32(_ type: UInt16) -> UInt32? { self[type].flatMap { $0.count >= 4 ? readU32($0, 0) : nil } }
    func i32(_ type: UInt16) -> Int32? { u32(type).map { Int32(bitPattern: $0) } }
    func be16(_ type: UInt16) -> UInt16? { u16(type).map { UInt16(bigEndian: $0) } }

    /// A NUL-terminated (or not) string attribute.
    func string(_ type: UInt16) -> String? {
        self[type].map { bytes in
            let content = bytes.prefix { $0 != 0 }
            return String(decoding: content, as: UTF8.self)
        }
    }

    func ip(_ type: UInt16) -> IPAddress? { self[type].flatMap { IPAddress(bytes: $0) } }
    func mac(_ type: UInt16) -> MACAddress? { self[type].flatMap { MACAddress(bytes: $0) } }
}

/// Native-order reads; callers have checked the bounds.
func readU16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
    guard offset >= 0, bytes.count - offset >= 2 else { return 0 }
    return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }
}

func readU32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    guard offset >= 0, bytes.count - offset >= 4 else { return 0 }
    return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
}

func readI32(_ bytes: [UInt8], _ offset: Int) -> Int32 { Int32(bitPattern: readU32(bytes, offset)) }
