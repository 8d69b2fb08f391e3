/// An nf_tables register. NFT_REG_1 (1) is the 128-bit register nft uses for a lone value or
/// the first field of a concatenation; NFT_REG32_00 + n (8 + n) address 32-bit slots.
public struct Register: Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let verdict = Register(rawValue: 0)
    public static let r1 = Register(rawValue: 1)
    public static let r2 = Register(rawValue: 2)
    public static func r32(_ index: UInt32) -> Register { Register(rawValue: 8 + index) }

    /// The register holding the field `words` 32-bit words after the start of reg 1, the way
    /// nft lays out concatenations (first field in reg 1, later ones in 32-bit slots).
    static func concatenationField(atWord words: Int) -> Register {
        words == 0 ? .r1 : .r32(UInt32(words))
    }
}

/// Meta keys (NFT_META_*).
public enum MetaKey: UInt32, Sendable, Hashable {
    case length = 0
    case `protocol` = 1
    case mark = 3
    case iif = 4
    case oif = 5
    case iifname = 6
    case oifname = 7
    case nfproto = 15
    case l4proto = 16
}

/// Payload bases (NFT_PAYLOAD_*).
public enum PayloadBase: UInt32, Sendable, Hashable {
    case link = 0
    case network = 1
    case transport = 2
}

public enum CmpOperator: UInt32, Sendable, Hashable {
    case eq = 0
    case neq = 1
    case lt = 2
    case lte = 3
    case gt = 4
    case gte = 5
}

/// fib lookups: which address to look up and what to return (NFTA_FIB_F_*, NFT_FIB_RESULT_*).
public struct FibFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let saddr = FibFlags(rawValue: 1)
    public static let daddr = FibFlags(rawValue: 2)
    public static let mark = FibFlags(rawValue: 4)
    public static let iif = FibFlags(rawValue: 8)
    public static let oif = FibFlags(rawValue: 16)
}

public enum FibResult: UInt32, Sendable, Hashable {
    case oif = 1
    case oifname = 2
    case addressType = 3
}

/// Conntrack keys (NFT_CT_*).
public enum CtKey: UInt32, Sendable, Hashable {
    case state = 0
    case direction = 1
    case status = 2
    case mark = 3
}

public enum NatType: UInt32, Sendable, Hashable {
    case snat = 0
    case dnat = 1
}

/// The L3 family of a NAT target address.
public enum NatFamily: UInt32, Sendable, Hashable {
    case ipv4 = 2
    case ipv6 = 10
}

/// Where a lookup finds its set: by name, or an anonymous constant set created in the same
/// batch (nft's `{ tcp, udp, sctp }`).
public enum SetReference: Sendable, Hashable {
    case named(String)
    case anonymous(keyType: [NFTDataType], elements: [[SetValue]])
}

/// How `numgen` generates (NFT_NG_*).
public enum NumgenType: UInt32, Sendable, Hashable {
    case incremental = 0
    case random = 1
}

/// One nf_tables expression, as `nft --debug=netlink` lists them.
public enum Expression: Sendable, Hashable {
    case meta(MetaKey, into: Register)
    /// `meta mark set ...`: writes a register into a meta key.
    case metaSet(MetaKey, from: Register)
    case payload(PayloadBase, offset: UInt32, length: UInt32, into: Register)
    case cmp(CmpOperator, Register, [UInt8])
    /// Set membership (`destination` nil) or a map lookup writing the value to `destination`.
    case lookup(SetReference, source: Register, destination: Register? = nil, inverted: Bool = false)
    case immediate(Verdict)
    case immediateData([UInt8], into: Register)
    case nat(NatType, family: NatFamily, address: Register?, port: Register?, flags: UInt32 = 0)
    case masquerade(flags: UInt32 = 0)
    case fib(FibFlags, result: FibResult, into: Register)
    case ct(CtKey, into: Register)
    case bitwise(source: Register, destination: Register, mask: [UInt8], xor: [UInt8])
    case range(CmpOperator, Register, from: [UInt8], to: [UInt8])
    case counter
    /// `numgen random mod N`: a number in 0..<N (host byte order u32) into a register.
    case numgen(NumgenType, modulus: UInt32, into: Register)
    /// `jhash <source> mod N seed S`: a Jenkins hash of `length` bytes of `source`, mod N.
    case jhash(source: Register, length: UInt32, modulus: UInt32, seed: UInt32, into: Register)
}
