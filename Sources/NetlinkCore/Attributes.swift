/// Attributes of one level, by type (NLA_F_NESTED and NLA_F_NET_BYTEORDER masked off).
/// The last occurrence wins, except through `all(_:)`, which keeps repeats in order.
package struct Attributes {
    package private(set) var entries: [(type: UInt16, value: [UInt8])] = []

    /// Parses attributes from `bytes` starting at `offset` (after the family header).
    package init(_ bytes: [UInt8], from offset: Int = 0) {
        var position = offset
        while position >= 0, bytes.count - position >= 4 {
            let length = Int(readU16(bytes, position))
            let type = readU16(bytes, position + 2) & 0x3fff
            // A short or overlong attribute ends parsing: what came before is still usable.
            guard length >= 4, length <= bytes.count - position else { break }
            entries.append((type, Array(bytes[(position + 4)..<(position + length)])))
            position += align(length)
        }
    }

    package subscript(type: UInt16) -> [UInt8]? { entries.last { $0.type == type }?.value }

    package func all(_ type: UInt16) -> [[UInt8]] { entries.filter { $0.type == type }.map(\.value) }

    package func nested(_ type: UInt16) -> Attributes? { self[type].map { Attributes($0) } }

    package func u8(_ type: UInt16) -> UInt8? { self[type].flatMap { $0.first } }
    package func u16(_ type: UInt16) -> UInt16? { self[type].flatMap { $0.count >= 2 ? readU16($0, 0) : nil } }
    package func u32(_ type: UInt16) -> UInt32? { self[type].flatMap { $0.count >= 4 ? readU32($0, 0) : nil } }
    package func i32(_ type: UInt16) -> Int32? { u32(type).map { Int32(bitPattern: $0) } }
    /// Network byte order, as ports and nf_tables/ctnetlink integers travel.
    package func be16(_ type: UInt16) -> UInt16? { u16(type).map { UInt16(bigEndian: $0) } }
    package func be32(_ type: UInt16) -> UInt32? { u32(type).map { UInt32(bigEndian: $0) } }

    /// A NUL-terminated (or not) string attribute.
    package func string(_ type: UInt16) -> String? {
        self[type].map { bytes in
            let content = bytes.prefix { $0 != 0 }
            return String(decoding: content, as: UTF8.self)
        }
    }
}
