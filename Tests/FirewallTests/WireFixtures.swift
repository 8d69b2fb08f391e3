// An independent, deliberately naive netlink encoder for expected bytes: the unit tests
// compare what Firewall builds through libnftnl with messages written out here by hand,
// attribute by attribute, in the layout `nft --debug=mnl` shows nft 1.0.6 sending.

indirect enum Attr {
    case raw(UInt16, [UInt8])
    case nest(UInt16, [Attr])

    static func string(_ type: UInt16, _ text: String) -> Attr { .raw(type, Array(text.utf8) + [0]) }
    static func be32(_ type: UInt16, _ value: UInt32) -> Attr {
        .raw(type, [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)])
    }
    static func be32(_ type: UInt16, signed value: Int32) -> Attr { be32(type, UInt32(bitPattern: value)) }
    /// NFTA_DATA_VALUE inside the given attribute (how keys, data and cmp operands travel).
    static func value(_ type: UInt16, _ bytes: [UInt8]) -> Attr { .nest(type, [.raw(1, bytes)]) }
    /// One expression: NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } } (the data
    /// nest is sent even when empty, e.g. for a plain `masquerade`).
    static func expr(_ name: String, _ data: [Attr]) -> Attr { .nest(1, [.string(1, name), .nest(2, data)]) }

    var bytes: [UInt8] {
        switch self {
        case .raw(let type, let value):
            return le16(UInt16(4 + value.count)) + le16(type) + value + padding(value.count)
        case .nest(let type, let children):
            let body = children.flatMap(\.bytes)
            return le16(UInt16(4 + body.count)) + le16(type | 0x8000) + body
        }
    }
}

/// A whole nfnetlink message: nlmsghdr, nfgenmsg, attributes.
/// Requests carry port id 0 (the kernel); replies carry the receiving socket's `portID`.
func nfnlMessage(
    type: UInt16, flags: UInt16, sequence: UInt32, portID: UInt32 = 0, family: UInt8, resourceID: UInt16 = 0,
    _ attributes: [Attr] = []
) -> [UInt8] {
    let body = [family, 0, UInt8(resourceID >> 8), UInt8(resourceID & 0xff)] + attributes.flatMap(\.bytes)
    return le32(UInt32(16 + body.count)) + le16(type) + le16(flags) + le32(sequence) + le32(portID) + body
}

/// nf_tables message types on the wire: NFNL_SUBSYS_NFTABLES (10) in the high byte.
func nftType(_ message: UInt16) -> UInt16 { 10 << 8 | message }

enum NFTMessage {
    static let newTable: UInt16 = 0
    static let newChain: UInt16 = 3
    static let newRule: UInt16 = 6
    static let newSet: UInt16 = 9
    static let newSetElement: UInt16 = 12
    static let delSetElement: UInt16 = 14
}

/// NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE.
let createFlags: UInt16 = 0x1 | 0x4 | 0x400

func batchBegin(sequence: UInt32, generation: UInt32? = nil) -> [UInt8] {
    nfnlMessage(
        type: 0x10, flags: 0x1, sequence: sequence, family: 0, resourceID: 10,
        generation.map { [Attr.be32(1, $0)] } ?? [])
}

func batchEnd(sequence: UInt32) -> [UInt8] {
    nfnlMessage(type: 0x11, flags: 0x1, sequence: sequence, family: 0, resourceID: 10)
}

func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xff), UInt8(value >> 8)] }
func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xff) } }
func padding(_ count: Int) -> [UInt8] { [UInt8](repeating: 0, count: (4 - count % 4) % 4) }

func hex(_ bytes: [UInt8]) -> String {
    stride(from: 0, to: bytes.count, by: 4).map { start in
        bytes[start..<min(start + 4, bytes.count)].map { String(format2($0)) }.joined()
    }.joined(separator: " ")
}

private func format2(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
}
