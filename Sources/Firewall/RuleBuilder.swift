import IPAddressing
import NetlinkCore

/// What a rule can match on, and how nft loads it into a register.
public enum Selector: Sendable, Hashable {
    case l4proto
    case nfproto
    case iifname
    case oifname
    case mark
    case ipSource
    case ipDestination
    case ip6Source
    case ip6Destination
    /// `th sport` / `th dport`: only meaningful after an l4proto match (nft requires it first).
    case transportSourcePort
    case transportDestinationPort
    /// `ether saddr`: the link-layer source (bridge family tables).
    case etherSource

    var length: Int {
        switch self {
        case .l4proto, .nfproto: 1
        case .iifname, .oifname, .ip6Source, .ip6Destination: 16
        case .mark, .ipSource, .ipDestination: 4
        case .transportSourcePort, .transportDestinationPort: 2
        case .etherSource: 6
        }
    }

    /// The set key type this selector's values have.
    public var dataType: NFTDataType {
        switch self {
        case .l4proto, .nfproto: .inetProtocol
        case .iifname, .oifname: .interfaceName
        case .mark: .mark
        case .ipSource, .ipDestination: .ipv4Address
        case .ip6Source, .ip6Destination: .ipv6Address
        case .transportSourcePort, .transportDestinationPort: .inetService
        case .etherSource: .etherAddress
        }
    }

    /// In inet/bridge tables an IP header field is only valid after `meta nfproto` says which
    /// IP version the packet is; nft adds that dependency implicitly, so do we.
    var requiredNFProto: UInt8? {
        switch self {
        case .ipSource, .ipDestination: 2
        case .ip6Source, .ip6Destination: 10
        default: nil
        }
    }

    func load(into register: Register) -> Expression {
        switch self {
        case .l4proto: .meta(.l4proto, into: register)
        case .nfproto: .meta(.nfproto, into: register)
        case .iifname: .meta(.iifname, into: register)
        case .oifname: .meta(.oifname, into: register)
        case .mark: .meta(.mark, into: register)
        case .ipSource: .payload(.network, offset: 12, length: 4, into: register)
        case .ipDestination: .payload(.network, offset: 16, length: 4, into: register)
        case .ip6Source: .payload(.network, offset: 8, length: 16, into: register)
        case .ip6Destination: .payload(.network, offset: 24, length: 16, into: register)
        case .transportSourcePort: .payload(.transport, offset: 0, length: 2, into: register)
        case .transportDestinationPort: .payload(.transport, offset: 2, length: 2, into: register)
        case .etherSource: .payload(.link, offset: 6, length: 6, into: register)
        }
    }
}

/// Conntrack states for `ct state` matches (NF_CT_STATE_* bits).
public struct CtState: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let invalid = CtState(rawValue: 1)
    public static let established = CtState(rawValue: 2)
    public static let related = CtState(rawValue: 4)
    public static let new = CtState(rawValue: 8)
    public static let untracked = CtState(rawValue: 64)
}

/// Conntrack status bits for `ct status` matches (IPS_* in linux/netfilter/nf_conntrack_common.h).
public struct CtStatus: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let expected = CtStatus(rawValue: 0x1)
    public static let seenReply = CtStatus(rawValue: 0x2)
    public static let assured = CtStatus(rawValue: 0x4)
    public static let confirmed = CtStatus(rawValue: 0x8)
    public static let snat = CtStatus(rawValue: 0x10)
    /// The connection's destination was rewritten (by a DNAT rule or map).
    public static let dnat = CtStatus(rawValue: 0x20)
}

/// A small builder: each call appends the expressions nft would generate for that clause.
///
///     Rule(family: .inet, table: "pier", chain: "prerouting", comment: "pier:dnat")
///         .match(.l4proto, in: [.tcp, .udp, .sctp])
///         .fibDestinationIsLocal()
///         .dnat(.ipv4, map: "dnat", key: [.l4proto, .transportDestinationPort])
extension Rule {
    /// `selector op value`, e.g. `meta l4proto tcp` or `ip saddr != 10.0.0.1`.
    public func match(_ selector: Selector, _ op: CmpOperator = .eq, _ value: SetValue) -> Rule {
        var rule = withDependency(of: [selector])
        rule.expressions.append(selector.load(into: .r1))
        rule.expressions.append(.cmp(op, .r1, value.bytes))
        return rule
    }

    /// `selector { v1, v2, ... }` through an anonymous constant set.
    public func match(_ selector: Selector, in values: [SetValue]) -> Rule {
        var rule = withDependency(of: [selector])
        rule.expressions.append(selector.load(into: .r1))
        rule.expressions.append(
            .lookup(.anonymous(keyType: [selector.dataType], elements: values.map { [$0] }), source: .r1))
        return rule
    }

    /// `a . b @set` (or `!= @set`): membership of a (possibly concatenated) key in a named set.
    public func match(_ selectors: [Selector], inSet name: String, negated: Bool = false) -> Rule {
        var rule = withDependency(of: selectors)
        rule.expressions += loadConcatenation(selectors)
        rule.expressions.append(.lookup(.named(name), source: .r1, inverted: negated))
        return rule
    }

    /// `fib daddr type local`: the destination is an address of this host (namespace).
    public func fibDestinationIsLocal() -> Rule {
        var rule = self
        rule.expressions.append(.fib(.daddr, result: .addressType, into: .r1))
        rule.expressions.append(.cmp(.eq, .r1, [2, 0, 0, 0]))  // RTN_LOCAL, host order u32
        return rule
    }

    /// `fib saddr type local` (or `!= local`): the source is an address of this host.
    public func fibSourceIsLocal(negated: Bool = false) -> Rule {
        var rule = self
        rule.expressions.append(.fib(.saddr, result: .addressType, into: .r1))
        rule.expressions.append(.cmp(negated ? .neq : .eq, .r1, [2, 0, 0, 0]))  // RTN_LOCAL, host order u32
        return rule
    }

    /// `ct state { ... }`: bitwise-and the state with the mask and require a non-zero result.
    public func ctState(_ states: CtState) -> Rule {
        var rule = self
        let mask = withUnsafeBytes(of: states.rawValue) { Array($0) }
        rule.expressions.append(.ct(.state, into: .r1))
        rule.expressions.append(.bitwise(source: .r1, destination: .r1, mask: mask, xor: [0, 0, 0, 0]))
        rule.expressions.append(.cmp(.neq, .r1, [0, 0, 0, 0]))
        return rule
    }

    /// `ct status dnat` (any of `status`): bitwise-and with the mask, require a non-zero result.
    public func ctStatus(_ status: CtStatus) -> Rule {
        var rule = self
        let mask = withUnsafeBytes(of: status.rawValue) { Array($0) }
        rule.expressions.append(.ct(.status, into: .r1))
        rule.expressions.append(.bitwise(source: .r1, destination: .r1, mask: mask, xor: [0, 0, 0, 0]))
        rule.expressions.append(.cmp(.neq, .r1, [0, 0, 0, 0]))
        return rule
    }

    /// `ip saddr 127.0.0.0/8` (any address selector and prefix of its family): the address
    /// masked to the prefix must equal the network. nft shortens byte-aligned prefixes to a
    /// shorter load; the masked full load matches the same packets.
    public func match(_ selector: Selector, prefix: IPPrefix, negated: Bool = false) -> Rule {
        var rule = withDependency(of: [selector])
        rule.expressions.append(selector.load(into: .r1))
        let mask = prefix.netmask.bytes
        if prefix.length < prefix.family.bitCount {
            rule.expressions.append(
                .bitwise(source: .r1, destination: .r1, mask: mask, xor: [UInt8](repeating: 0, count: mask.count)))
        }
        rule.expressions.append(.cmp(negated ? .neq : .eq, .r1, prefix.firstAddress.bytes))
        return rule
    }

    /// `dnat ip to a . b map @name`: the map value is `address . port`.
    public func dnat(_ family: NatFamily, map name: String, key: [Selector]) -> Rule {
        var rule = withDependency(of: key)
        rule.expressions += loadConcatenation(key)
        rule.expressions.append(.lookup(.named(name), source: .r1, destination: .r1))
        let addressWords = family == .ipv4 ? 1 : 4
        rule.expressions.append(
            .nat(.dnat, family: family, address: .r1, port: .concatenationField(atWord: addressWords)))
        return rule
    }

    /// `dnat to address[:port]`.
    public func dnat(to address: IPAddress, port: UInt16? = nil) -> Rule {
        var rule = self
        let family: NatFamily = address.family == .v4 ? .ipv4 : .ipv6
        rule.expressions.append(.immediateData(address.bytes, into: .r1))
        var portRegister: Register?
        if let port {
            rule.expressions.append(.immediateData([UInt8(port >> 8), UInt8(port & 0xff)], into: .r2))
            portRegister = .r2
        }
        rule.expressions.append(.nat(.dnat, family: family, address: .r1, port: portRegister))
        return rule
    }

    /// `meta mark & mask == mask`: every bit of `mask` is set in the packet mark. The
    /// expressions iptables-nft itself writes for `-m mark --mark mask/mask`, so `iptables -L`
    /// shows such a rule in its own tables as a mark match.
    public func markHasBits(_ mask: UInt32) -> Rule {
        var rule = self
        let bytes = withUnsafeBytes(of: mask) { Array($0) }
        rule.expressions.append(.meta(.mark, into: .r1))
        rule.expressions.append(.bitwise(source: .r1, destination: .r1, mask: bytes, xor: [0, 0, 0, 0]))
        rule.expressions.append(.cmp(.eq, .r1, bytes))
        return rule
    }

    /// `meta mark set meta mark or bits`: sets `bits` and keeps every other bit of the mark.
    public func setMarkBits(_ bits: UInt32) -> Rule {
        var rule = self
        rule.expressions.append(.meta(.mark, into: .r1))
        rule.expressions.append(
            .bitwise(
                source: .r1, destination: .r1, mask: withUnsafeBytes(of: ~bits) { Array($0) },
                xor: withUnsafeBytes(of: bits) { Array($0) }))
        rule.expressions.append(.metaSet(.mark, from: .r1))
        return rule
    }

    public func masquerade() -> Rule { appending(.masquerade()) }
    public func counter() -> Rule { appending(.counter) }
    public func verdict(_ verdict: Verdict) -> Rule { appending(.immediate(verdict)) }

    /// `a . b vmap @name`.
    public func verdictMap(_ key: [Selector], map name: String) -> Rule {
        var rule = withDependency(of: key)
        rule.expressions += loadConcatenation(key)
        rule.expressions.append(.lookup(.named(name), source: .r1, destination: .verdict))
        return rule
    }

    public func appending(_ expression: Expression) -> Rule {
        var rule = self
        rule.expressions.append(expression)
        return rule
    }

    private func withDependency(of selectors: [Selector]) -> Rule {
        guard family == .inet || family == .bridge || family == .netdev else { return self }
        var rule = self
        for proto in Set(selectors.compactMap(\.requiredNFProto)).sorted() {
            let check: [Expression] = [.meta(.nfproto, into: .r1), .cmp(.eq, .r1, [proto])]
            if !rule.expressions.containsSubsequence(check) { rule.expressions += check }
        }
        return rule
    }

    private func loadConcatenation(_ selectors: [Selector]) -> [Expression] {
        var words = 0
        return selectors.map { selector in
            defer { words += align(selector.length) / 4 }
            return selector.load(into: .concatenationField(atWord: words))
        }
    }
}

extension Array where Element == Expression {
    fileprivate func containsSubsequence(_ part: [Expression]) -> Bool {
        guard part.count <= count else { return false }
        return (0...(count - part.count)).contains { Array(self[$0..<($0 + part.count)]) == part }
    }
}
