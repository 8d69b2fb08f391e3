import IPAddressing

/// An nftables table. Created idempotently (NLM_F_CREATE without EXCL).
public struct Table: Sendable, Hashable {
    public var family: TableFamily
    public var name: String
    /// Kernel handle, present on tables read back from the kernel.
    public var handle: UInt64?

    public init(family: TableFamily, name: String) {
        self.family = family
        self.name = name
    }
}

public enum ChainType: String, Sendable, Hashable {
    case filter
    case nat
    case route
}

/// Netfilter hooks (NF_INET_*).
public enum Hook: UInt32, Sendable, Hashable {
    case prerouting = 0
    case input = 1
    case forward = 2
    case output = 3
    case postrouting = 4
}

/// Standard priorities nft names (dstnat, srcnat, filter).
public enum ChainPriority {
    public static let dstnat: Int32 = -100
    public static let filter: Int32 = 0
    public static let srcnat: Int32 = 100
}

/// Hook attachment of a base chain.
public struct BaseChainSpec: Sendable, Hashable {
    public var type: ChainType
    public var hook: Hook
    public var priority: Int32
    /// Only accept and drop are valid policies.
    public var policy: Verdict

    public init(type: ChainType, hook: Hook, priority: Int32, policy: Verdict = .accept) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
    }
}

/// A chain: a base chain when `base` is set, otherwise a regular chain (jump/goto target).
public struct Chain: Sendable, Hashable {
    public var family: TableFamily
    public var table: String
    public var name: String
    public var base: BaseChainSpec?
    public var handle: UInt64?

    public init(family: TableFamily, table: String, name: String, base: BaseChainSpec? = nil) {
        self.family = family
        self.table = table
        self.name = name
        self.base = base
    }
}

/// Set flags (NFT_SET_*), the ones Pier uses.
public struct SetFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let constant = SetFlags(rawValue: 0x2)
    public static let interval = SetFlags(rawValue: 0x4)
    public static let timeout = SetFlags(rawValue: 0x10)
}

/// A named set (no `dataType`) or map (`dataType` set; `[.verdict]` for a verdict map).
public struct NFTSet: Sendable, Hashable {
    public var family: TableFamily
    public var table: String
    public var name: String
    /// One type, or several for a concatenation (`inet_proto . inet_service`).
    public var keyType: [NFTDataType]
    public var dataType: [NFTDataType]?
    public var flags: SetFlags
    public var handle: UInt64?

    public init(
        family: TableFamily, table: String, name: String, keyType: [NFTDataType],
        dataType: [NFTDataType]? = nil, flags: SetFlags = []
    ) {
        self.family = family
        self.table = table
        self.name = name
        self.keyType = keyType
        self.dataType = dataType
        self.flags = flags
    }

    public var isMap: Bool { dataType != nil }
    public var isVerdictMap: Bool { dataType == [.verdict] }
}

/// A set or map element. `comment` is the element user data that tags it with its owner
/// (the attachment identity `containerID/ifname`), visible in `nft list` as `comment "..."`.
public struct SetElement: Sendable, Hashable {
    public var key: [SetValue]
    /// For interval sets: the inclusive end of the range; nil for a single value. For a
    /// concatenation every field gets a range (a lone value is a range from it to itself).
    public var keyEnd: [SetValue]?
    public var data: [SetValue]?
    public var verdict: Verdict?
    public var comment: String?

    public init(key: [SetValue], data: [SetValue]? = nil, comment: String? = nil) {
        self.key = key
        self.data = data
        self.comment = comment
    }

    public init(key: [SetValue], verdict: Verdict, comment: String? = nil) {
        self.key = key
        self.verdict = verdict
        self.comment = comment
    }

    /// An interval-set element covering `key` through `keyEnd` (both inclusive).
    public init(key: [SetValue], through keyEnd: [SetValue], data: [SetValue]? = nil, comment: String? = nil) {
        self.key = key
        self.keyEnd = keyEnd
        self.data = data
        self.comment = comment
    }

    /// An interval-set element covering a whole prefix (e.g. a network's subnet).
    public init(prefix: IPPrefix, comment: String? = nil) {
        self.key = [.address(prefix.firstAddress)]
        self.keyEnd = [.address(prefix.lastAddress)]
        self.comment = comment
    }
}

/// An element as read back from the kernel: raw key/value bytes plus what they decode to.
public struct ElementRecord: Sendable, Hashable {
    public var key: [UInt8]
    public var data: [UInt8]?
    public var verdict: Verdict?
    public var comment: String?
    /// True for the closing element of an interval (it has no comment and no data).
    public var isIntervalEnd: Bool
    /// The inclusive end of a range over a concatenation (NFTA_SET_ELEM_KEY_END).
    public var keyEnd: [UInt8]?

    public func decodedKey(_ types: [NFTDataType]) -> [SetValue]? { decodeValues(key, as: types) }
    public func decodedData(_ types: [NFTDataType]) -> [SetValue]? { data.flatMap { decodeValues($0, as: types) } }
}

/// A rule: expressions in order, plus a comment (rule user data) that identifies it.
public struct Rule: Sendable, Hashable {
    public var family: TableFamily
    public var table: String
    public var chain: String
    public var expressions: [Expression]
    public var comment: String?
    public var handle: UInt64?

    public init(
        family: TableFamily, table: String, chain: String, expressions: [Expression] = [],
        comment: String? = nil
    ) {
        self.family = family
        self.table = table
        self.chain = chain
        self.expressions = expressions
        self.comment = comment
    }
}
