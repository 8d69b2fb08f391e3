import CNftnl

/// Key/data attributes of a set or map, including the user data nft reads to print types.
struct SetAttributes {
    var keyType: [NFTDataType]
    var dataType: [NFTDataType]?
    var flags: UInt32
    var setID: UInt32?
    var size: UInt32?

    func apply(to set: OpaquePointer) {
        var allFlags = flags
        if dataType != nil { allFlags |= 0x8 }  // NFT_SET_MAP
        // Interval sets over concatenations use the pipapo backend, which needs field lengths.
        let concatenatedInterval = keyType.count > 1 && flags & 0x4 != 0
        if concatenatedInterval { allFlags |= 0x80 }  // NFT_SET_CONCAT
        nftnl_set_set_u32(set, UInt16(NFTNL_SET_FLAGS.rawValue), allFlags)
        nftnl_set_set_u32(set, UInt16(NFTNL_SET_KEY_TYPE.rawValue), concatenatedTypeID(keyType))
        nftnl_set_set_u32(set, UInt16(NFTNL_SET_KEY_LEN.rawValue), UInt32(keyLength(keyType)))
        if let dataType {
            nftnl_set_set_u32(set, UInt16(NFTNL_SET_DATA_TYPE.rawValue), concatenatedTypeID(dataType))
            // Verdict maps: the kernel sizes the data itself; nft sends 0 and so do we.
            nftnl_set_set_u32(set, UInt16(NFTNL_SET_DATA_LEN.rawValue), UInt32(keyLength(dataType)))
        }
        if let setID { nftnl_set_set_u32(set, UInt16(NFTNL_SET_ID.rawValue), setID) }
        if let size { nftnl_set_set_u32(set, UInt16(NFTNL_SET_DESC_SIZE.rawValue), size) }
        if concatenatedInterval {
            let fieldLengths = keyType.map { UInt8($0.length) }
            fieldLengths.withUnsafeBytes { raw in
                _ = nftnl_set_set_data(set, UInt16(NFTNL_SET_DESC_CONCAT.rawValue), raw.baseAddress, UInt32(raw.count))
            }
        }
        let userData = UserData.setTypes(keyType: keyType, dataType: dataType)
        userData.withUnsafeBytes { raw in
            _ = nftnl_set_set_data(set, UInt16(NFTNL_SET_USERDATA.rawValue), raw.baseAddress, UInt32(raw.count))
        }
    }
}

/// An element as the kernel stores it: an interval is two of these (start, and end + 1
/// flagged NFT_SET_ELEM_INTERVAL_END).
struct KernelElement {
    var key: [UInt8]
    var data: [UInt8]?
    var verdict: Verdict?
    var comment: String?
    var flags: UInt32 = 0
    /// Inclusive range end, for intervals over concatenations (the pipapo backend).
    var keyEnd: [UInt8]?

    static func expand(_ element: SetElement) -> [KernelElement] {
        var start = KernelElement(
            key: encodeValues(element.key), data: element.data.map(encodeValues), verdict: element.verdict,
            comment: element.comment)
        guard let keyEnd = element.keyEnd else { return [start] }
        if element.key.count > 1 {
            // Concatenated ranges are one element carrying both ends (NFTA_SET_ELEM_KEY_END).
            start.keyEnd = encodeValues(keyEnd)
            return [start]
        }
        // The kernel wants the first key after the range; a range that runs to the very last
        // value has no end element at all.
        guard let after = incremented(encodeValues(keyEnd)) else { return [start] }
        return [start, KernelElement(key: after, flags: 1)]
    }

    var keyOnly: KernelElement { KernelElement(key: key, flags: flags, keyEnd: keyEnd) }

    func add(to set: OpaquePointer) {
        guard let element = nftnl_set_elem_alloc() else { return }
        key.withUnsafeBytes { raw in
            _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), raw.baseAddress, UInt32(raw.count))
        }
        if let keyEnd {
            keyEnd.withUnsafeBytes { raw in
                _ = nftnl_set_elem_set(
                    element, UInt16(NFTNL_SET_ELEM_KEY_END), raw.baseAddress, UInt32(raw.count))
            }
        }
        if let data {
            data.withUnsafeBytes { raw in
                _ = nftnl_set_elem_set(
                    element, UInt16(NFTNL_SET_ELEM_DATA), raw.baseAddress, UInt32(raw.count))
            }
        }
        if let verdict {
            nftnl_set_elem_set_u32(
                element, UInt16(NFTNL_SET_ELEM_VERDICT), UInt32(bitPattern: verdict.code))
            if let chain = verdict.chain {
                nftnl_set_elem_set_str(element, UInt16(NFTNL_SET_ELEM_CHAIN), chain)
            }
        }
        if flags != 0 { nftnl_set_elem_set_u32(element, UInt16(NFTNL_SET_ELEM_FLAGS), flags) }
        if let comment {
            let userData = UserData.comment(comment)
            userData.withUnsafeBytes { raw in
                _ = nftnl_set_elem_set(
                    element, UInt16(NFTNL_SET_ELEM_USERDATA), raw.baseAddress, UInt32(raw.count))
            }
        }
        nftnl_set_elem_add(set, element)
    }

    private static func incremented(_ bytes: [UInt8]) -> [UInt8]? {
        var result = bytes
        for index in result.indices.reversed() {
            if result[index] == 0xff {
                result[index] = 0
            } else {
                result[index] += 1
                return result
            }
        }
        return nil
    }
}
