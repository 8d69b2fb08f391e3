import NetlinkCore

/// nftnl user data: a list of (u8 type, u8 length, value) records that the kernel stores
/// opaquely on tables, sets, elements and rules. nft reads comments and set types from it.
enum UserData {
    /// nft (NFTNL_UDATA_COMMENT_MAXLEN) caps comments at 128 bytes including the NUL.
    static let maximumCommentLength = 127

    /// The comment as it will be stored: cut to the length nft accepts, on a UTF-8 boundary.
    static func normalizedComment(_ text: String) -> String {
        var utf8 = Array(text.utf8.prefix { $0 != 0 }.prefix(maximumCommentLength))
        while String(validating: utf8, as: UTF8.self) == nil, !utf8.isEmpty { utf8.removeLast() }
        return String(decoding: utf8, as: UTF8.self)
    }

    /// A comment record (type 0 is the comment for rules and set elements alike).
    static func comment(_ text: String) -> [UInt8] {
        let value = Array(normalizedComment(text).utf8) + [0]
        return [0, UInt8(value.count)] + value
    }

    /// NFTNL_UDATA_SET_KEYBYTEORDER and, for maps, NFTNL_UDATA_SET_DATABYTEORDER: without
    /// them nft still loads the set but may print integer-like keys in the wrong byte order.
    static func setTypes(keyType: [NFTDataType], dataType: [NFTDataType]?) -> [UInt8] {
        func order(_ types: [NFTDataType]) -> UInt32 { types.count == 1 ? types[0].byteOrder : 0 }
        var bytes: [UInt8] = [0, 4]
        bytes += hostBytes(order(keyType))
        if let dataType {
            bytes += [1, 4]
            bytes += hostBytes(order(dataType))
        }
        return bytes
    }

    static func parse(_ bytes: [UInt8]) -> [UInt8: [UInt8]] {
        var records: [UInt8: [UInt8]] = [:]
        var offset = 0
        while offset + 2 <= bytes.count {
            let type = bytes[offset]
            let length = Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { break }
            records[type] = Array(bytes[(offset + 2)..<(offset + 2 + length)])
            offset += 2 + length
        }
        return records
    }

    /// The comment record of a user-data blob, if there is one.
    static func comment(in bytes: [UInt8]) -> String? {
        guard let value = parse(bytes)[0] else { return nil }
        return String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
    }
}
