import Firewall
import IPAddressing
import NetlinkCore

#if canImport(Glibc)
    import Glibc
#endif

extension PortPublishing {
    /// True when every rule `publish` ensures and every one of `ports` is in place under
    /// `owner`: a reload over intact state then commits nothing (read before write).
    public func isPublished(
        _ ports: [PublishedPort], owner: String, snat: Bool, masqueradeAll: Bool
    ) throws(FirewallError) -> Bool {
        let wanted = PierTable.rules + Self.dnatRules + (snat ? Self.snatRules : [])
        for chain in Set(wanted.map(\.chain)) {
            let present: Set<String>
            do {
                present = Set(
                    try client.rules(family: .inet, table: PierTable.name, chain: chain).compactMap(\.comment))
            } catch  where error.isNotFound {
                return false
            }
            let needed = wanted.filter { $0.chain == chain }.compactMap(\.comment)
            guard needed.allSatisfy(present.contains) else { return false }
        }
        guard Set(try published(by: owner)).isSuperset(of: ports) else { return false }
        guard masqueradeAll else { return true }
        for port in ports {
            let set = port.family == .v4 ? Self.masqueradeAllV4 : Self.masqueradeAllV6
            guard try client.element([.address(port.container)], in: set.path)?.comment == owner else { return false }
        }
        return true
    }
}

/// Watches nf_tables for someone else removing Pier's objects (`nft flush ruleset`, a firewall
/// manager's reload, `systemctl restart nftables`) or changing other tables' chains and rules
/// (`iptables -F`, `iptables -P FORWARD DROP`, a new `inet filter` table), so
/// `pier firewall reload --watch` can put Pier's state back. It listens to the kernel's
/// NFNLGRP_NFTABLES notifications, which every committed nf_tables transaction sends, whoever
/// made it.
public final class PierTablesWatch {
    /// NFNLGRP_NFTABLES (linux/netfilter/nfnetlink.h).
    static let nftablesGroup: UInt32 = 7
    /// NFNL_SUBSYS_NFTABLES, the high byte of every nf_tables message type.
    static let nftablesSubsystem: UInt16 = 10
    /// NFT_MSG_DELTABLE, DELCHAIN, DELRULE, DELSET (linux/netfilter/nf_tables.h). Element
    /// removals are left out: every container DEL removes its own elements.
    static let removals: Set<UInt16> = [2, 5, 8, 11]
    /// NFT_MSG_NEWTABLE, DELTABLE, NEWCHAIN, DELCHAIN, NEWRULE, DELRULE: what can add or take
    /// away a forward chain that drops, or Pier's accept rule in one.
    static let foreignChanges: Set<UInt16> = [0, 2, 3, 5, 6, 8]
    /// NFPROTO_INET and NFPROTO_BRIDGE: the families of Pier's two tables.
    static let pierFamilies: Set<UInt8> = [1, 7]
    /// NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_INET: families whose forward chains Pier's accept
    /// rule goes into.
    static let foreignFamilies: Set<UInt8> = [2, 10, 1]
    /// NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE: all attribute 1.
    static let tableAttribute: UInt16 = 1

    private let socket: NetlinkSocket

    /// Subscribes in the calling thread's network namespace. `poll` bounds each wait, so the
    /// caller can debounce.
    public init(poll: Duration = .milliseconds(100)) throws(NetlinkError) {
        socket = try NetlinkSocket(.netfilter, receiveTimeout: poll)
        try socket.subscribe(group: Self.nftablesGroup)
    }

    /// What one wait brought.
    public enum Event: Equatable, Sendable {
        /// Nothing within the poll interval.
        case quiet
        /// Other nf_tables changes only.
        case unrelated
        /// One of Pier's tables, chains, rules or sets was removed.
        case pierObjectRemoved
        /// A table, chain or rule of another IP table came or went: a forward chain may now
        /// drop by default, or have lost Pier's accept rule.
        case foreignForwardChanged
        /// The kernel dropped notifications (ENOBUFS): anything may have happened.
        case overrun
    }

    public func next() throws(NetlinkError) -> Event {
        let datagram: [UInt8]
        do {
            datagram = try socket.receive()
        } catch {
            if error.errno == ETIMEDOUT { return .quiet }
            if error.errno == ENOBUFS { return .overrun }
            throw error
        }
        return Self.classify(datagram)
    }

    /// Whether a datagram of notifications removes anything of Pier's (which wins: the reload
    /// that follows also settles other tables), or changes another IP table's chains or rules.
    public static func classify(_ datagram: [UInt8]) -> Event {
        var event = Event.unrelated
        for message in NetlinkMessage.split(datagram) ?? [] {
            guard message.type >> 8 == nftablesSubsystem, message.payload.count >= 4 else { continue }
            let type = message.type & 0xff
            let family = message.payload[0]
            // After the 4-byte nfgenmsg come the attributes.
            let isPiers = Attributes(message.payload, from: 4).string(tableAttribute) == PierTable.name
            if isPiers, pierFamilies.contains(family), removals.contains(type) { return .pierObjectRemoved }
            if foreignChanges.contains(type), foreignFamilies.contains(family), !(isPiers && family == 1) {
                event = .foreignForwardChanged
            }
        }
        return event
    }
}

extension SpoofCheck {
    /// True when the rule and both of the port's elements are in place under `owner`, so a
    /// reload over intact state sends nothing.
    public func isComplete(port: String, mac: MACAddress, owner: String) throws(FirewallError) -> Bool {
        do {
            let comments = try client.rules(family: .bridge, table: PierTable.name, chain: Self.prerouting.name)
                .compactMap(\.comment)
            guard let wanted = Self.rule.comment, comments.contains(wanted),
                try client.element([.interfaceName(port)], in: Self.ports.path)?.comment == owner
            else { return false }
        } catch  where error.isNotFound {
            return false
        }
        return try isProtected(port: port, mac: mac, owner: owner)
    }
}
