import IPAddressing
import NetlinkCore

/// nftables address families (NFPROTO_*).
public enum TableFamily: UInt8, Sendable, Hashable, CaseIterable {
    case ip = 2
    case ip6 = 10
    case inet = 1
    case bridge = 7
    case arp = 3
    case netdev = 5

    public var name: String {
        switch self {
        case .ip: "ip"
        case .ip6: "ip6"
        case .inet: "inet"
        case .bridge: "bridge"
        case .arp: "arp"
        case .netdev: "netdev"
        }
    }
}

/// Element types of sets and maps, with nft's type numbers (src/datatype.h), so that `nft list`
/// prints keys and values as addresses, protocols and ports.
public enum NFTDataType: Sendable, Hashable {
    case ipv4Address
    case ipv6Address
    case etherAddress
    case inetProtocol
    case inetService
    case mark
    case interfaceName
    /// Verdict maps: the value is a verdict (accept, drop, jump chain, goto chain).
    case verdict

    var typeID: UInt32 {
        switch self {
        case .ipv4Address: 7
        case .ipv6Address: 8
        case .etherAddress: 9
        case .inetProtocol: 12
        case .inetService: 13
        case .mark: 19
        case .interfaceName: 41
        case .verdict: 0xffff_ff00  // NFT_DATA_VERDICT
        }
    }

    /// Length in bytes of one value, before concatenation padding.
    public var length: Int {
        switch self {
        case .ipv4Address, .mark: 4
        case .ipv6Address, .interfaceName: 16
        case .etherAddress: 6
        case .inetProtocol: 1
        case .inetService: 2
        case .verdict: 0
        }
    }

    /// nft's byte-order tag for set user data: 0 none (verdicts), 1 host endian, 2 big endian.
    var byteOrder: UInt32 {
        switch self {
        case .verdict: 0
        case .inetProtocol, .mark, .interfaceName: 1
        default: 2
        }
    }
}

/// nft folds a concatenation's types into one number, 6 bits per component.
func concatenatedTypeID(_ types: [NFTDataType]) -> UInt32 {
    types.reduce(0) { ($0 << 6) | $1.typeID }
}

/// The kernel key length: a lone value keeps its length; in a concatenation every component
/// occupies whole 32-bit registers.
func keyLength(_ types: [NFTDataType]) -> Int {
    types.count == 1 ? types[0].length : types.reduce(0) { $0 + align($1.length) }
}

/// One component of a set key or map value.
public enum SetValue: Sendable, Hashable, CustomStringConvertible {
    case address(IPAddress)
    /// An IP protocol number (inet_proto): 6 tcp, 17 udp, 132 sctp.
    case inetProtocol(UInt8)
    /// A port (inet_service), in host order here, network order on the wire.
    case port(UInt16)
    case mark(UInt32)
    case interfaceName(String)
    case raw([UInt8])

    public static let tcp = SetValue.inetProtocol(6)
    public static let udp = SetValue.inetProtocol(17)
    public static let sctp = SetValue.inetProtocol(132)

    /// The value as the kernel stores it (network order for addresses and ports).
    public var bytes: [UInt8] {
        switch self {
        case .address(let address): address.bytes
        case .inetProtocol(let proto): [proto]
        case .port(let port): [UInt8(port >> 8), UInt8(port & 0xff)]
        case .mark(let mark): withUnsafeBytes(of: mark) { Array($0) }
        case .interfaceName(let name):
            Array((Array(name.utf8.prefix(15)) + [UInt8](repeating: 0, count: 16)).prefix(16))
        case .raw(let bytes): bytes
        }
    }

    public var description: String {
        switch self {
        case .address(let address): "\(address)"
        case .inetProtocol(let proto): "proto \(proto)"
        case .port(let port): "\(port)"
        case .mark(let mark): "mark \(mark)"
        case .interfaceName(let name): "\"\(name)\""
        case .raw(let bytes): bytes.map { String($0, radix: 16) }.joined(separator: ":")
        }
    }
}

/// Encodes a key or value: concatenations pad every component to 4 bytes.
func encodeValues(_ values: [SetValue]) -> [UInt8] {
    guard values.count > 1 else { return values.first?.bytes ?? [] }
    return values.flatMap { value in
        let bytes = value.bytes
        return bytes + [UInt8](repeating: 0, count: align(bytes.count) - bytes.count)
    }
}

/// Decodes kernel key/value bytes back into components of the given types.
public func decodeValues(_ bytes: [UInt8], as types: [NFTDataType]) -> [SetValue]? {
    var offset = 0
    var values: [SetValue] = []
    for type in types {
        let length = type.length
        guard offset + length <= bytes.count else { return nil }
        let field = Array(bytes[offset..<(offset + length)])
        switch type {
        case .ipv4Address, .ipv6Address:
            guard let address = IPAddress(bytes: field) else { return nil }
            values.append(.address(address))
        case .inetProtocol: values.append(.inetProtocol(field[0]))
        case .inetService: values.append(.port(UInt16(field[0]) << 8 | UInt16(field[1])))
        case .mark: values.append(.mark(readU32(field, 0)))
        case .interfaceName: values.append(.interfaceName(String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)))
        case .etherAddress, .verdict: values.append(.raw(field))
        }
        offset += types.count == 1 ? length : align(length)
    }
    return values
}

/// Rule and verdict-map verdicts (NF_ACCEPT, NF_DROP, NFT_JUMP, ...).
public enum Verdict: Sendable, Hashable {
    case accept
    case drop
    case `continue`
    case `return`
    case jump(String)
    case goto(String)

    var code: Int32 {
        switch self {
        case .accept: 1
        case .drop: 0
        case .continue: -1
        case .return: -5
        case .jump: -3
        case .goto: -4
        }
    }

    var chain: String? {
        switch self {
        case .jump(let chain), .goto(let chain): chain
        default: nil
        }
    }

    init?(code: Int32, chain: String?) {
        switch code {
        case 1: self = .accept
        case 0: self = .drop
        case -1: self = .continue
        case -5: self = .return
        case -3: self = .jump(chain ?? "")
        case -4: self = .goto(chain ?? "")
        default: return nil
        }
    }
}
