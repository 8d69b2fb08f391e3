import Firewall

/// A forward base chain of another table (iptables-nft's `ip filter FORWARD`, a hand-written
/// `inet filter forward`, firewalld's `filter_FORWARD`) that drops what its rules do not accept.
public struct ForeignForwardChain: Sendable, Hashable {
    /// How the chain drops by default.
    public enum Default: Sendable, Hashable {
        /// `policy drop`.
        case policyDrop
        /// A final rule that drops or rejects everything (its handle).
        case finalRule(handle: UInt64)
    }

    public var chain: Chain
    /// Nil for a chain that no longer drops by default but still holds Pier's rule.
    public var drops: Default?
    /// Handles of Pier's accept rules in the chain (one when in place).
    public var pierAccepts: [UInt64]

    public var hasPierAccept: Bool { !pierAccepts.isEmpty }
    /// The chain runs before Pier's `forward_mark` chain, so the mark is not set yet when it
    /// looks: Pier's accept cannot work there.
    public var runsBeforeMarking: Bool { (chain.base?.priority ?? 0) <= PierTable.markPriority }
    public var name: String { "\(chain.family.name) \(chain.table) \(chain.name)" }
}

/// The one thing Pier changes outside its own tables. nftables evaluates every base chain on a
/// hook and an `accept` ends only its own chain, so a drop policy in another table's forward
/// chain drops Pier's container traffic whatever `inet pier` accepts. Into each such chain Pier
/// puts one rule, `meta mark & 0x01000000 == 0x01000000 counter accept`, matching only the
/// traffic Pier's `forward_mark` chain marked as its own: the very expressions iptables-nft
/// writes for `-m mark --mark 0x1000000/0x1000000 -j ACCEPT`, so `iptables -L` and
/// `iptables-save` show and keep it. It goes last in a chain with a drop policy (the chain's own
/// rules, its explicit drops included, still decide first; only the policy no longer applies
/// to Pier's traffic) and right before the final rule of a chain that ends in an unconditional
/// drop or reject. Found again by its comment, or by its match and verdict once an
/// `iptables-save | iptables-restore` round trip turned the comment into an xt match.
public struct ForeignForwardAccept {
    public static let comment = "pier: accept traffic of Pier containers (marked by inet pier forward_mark)"

    public let client: NFTablesClient

    public init(client: NFTablesClient) { self.client = client }

    /// Pier's rule for `chain`.
    public static func acceptRule(in chain: Chain) -> Rule {
        Rule(family: chain.family, table: chain.table, chain: chain.name, comment: comment)
            .markHasBits(PierTable.trafficMark).counter().verdict(.accept)
    }

    /// Pier's rule as read back: by comment, or by exactly its match and verdict (with an xt
    /// comment match in place of the rule comment after iptables-restore).
    public static func isPierAccept(_ rule: RuleRecord) -> Bool {
        if rule.comment == comment { return true }
        let names = rule.expressionNames.filter { $0 != "match" && $0 != "counter" }
        return rule.markBits == PierTable.trafficMark && rule.verdict == .accept
            && names == ["meta", "bitwise", "cmp", "immediate"]
    }

    /// Filter chains on the forward hook of IP tables other than Pier's: those that drop by
    /// default, and those holding a Pier accept. Bridge-family chains are left out: they run
    /// before the IP forward hook, where the mark is set.
    public func survey() throws(FirewallError) -> [ForeignForwardChain] {
        var found: [ForeignForwardChain] = []
        let chains: [Chain]
        do { chains = try client.allChains() } catch  where error.isNotFound { return [] }
        for chain in chains {
            guard let base = chain.base, base.hook == .forward, base.type == .filter,
                [.ip, .ip6, .inet].contains(chain.family), !(chain.family == .inet && chain.table == PierTable.name)
            else { continue }
            let rules: [RuleRecord]
            do {
                rules = try client.rules(family: chain.family, table: chain.table, chain: chain.name)
            } catch  where error.isNotFound {
                continue
            }
            let accepts = rules.filter(Self.isPierAccept).map(\.handle)
            var drops: ForeignForwardChain.Default?
            if base.policy == .drop {
                drops = .policyDrop
            } else if let last = rules.last, last.dropsEverything {
                drops = .finalRule(handle: last.handle)
            }
            guard drops != nil || !accepts.isEmpty else { continue }
            found.append(ForeignForwardChain(chain: chain, drops: drops, pierAccepts: accepts))
        }
        return found
    }

    /// Puts Pier's rule into every dropping forward chain that lacks it. Read before write (over
    /// intact state nothing is committed) and generation-checked, so concurrent plugins add it
    /// once. Returns the chains it was added to.
    @discardableResult
    public func ensure() throws(FirewallError) -> [ForeignForwardChain] {
        var added: [ForeignForwardChain] = []
        try client.withGenerationCheck { _ throws(FirewallError) in
            added = []
            var batch = Batch()
            for foreign in try survey() where !foreign.hasPierAccept {
                switch foreign.drops {
                case .policyDrop: batch.add(Self.acceptRule(in: foreign.chain))
                case .finalRule(let handle): batch.insert(Self.acceptRule(in: foreign.chain), before: handle)
                case nil: continue
                }
                added.append(foreign)
            }
            return batch
        }
        return added
    }

    /// Deletes Pier's rule from every other table. Returns how many rules went.
    @discardableResult
    public func removeAll() throws(FirewallError) -> Int {
        var count = 0
        try client.withGenerationCheck { _ throws(FirewallError) in
            var batch = Batch()
            count = 0
            for foreign in try survey() {
                for handle in foreign.pierAccepts {
                    batch.deleteRule(
                        family: foreign.chain.family, table: foreign.chain.table, chain: foreign.chain.name,
                        handle: handle)
                    count += 1
                }
            }
            return batch
        }
        return count
    }

    /// What follows a change to other tables: Pier's rule wherever a forward chain drops while
    /// Pier's `forward_mark` chain exists, and nowhere once Pier's table is gone.
    public func reconcile() throws(FirewallError) {
        let marking: Bool
        do {
            marking = try client.chains(family: .inet, table: PierTable.name).contains {
                $0.name == PierTable.forwardMark.name
            }
        } catch  where error.isNotFound {
            marking = false
        }
        if marking { try ensure() } else { try removeAll() }
    }
}

extension ForeignForwardAccept {
    /// On a fresh netfilter socket in the calling thread's network namespace.
    public init() throws(FirewallError) { self.init(client: try NFTablesClient()) }

    /// Takes everything of Pier's out of nftables (uninstalling): its accept rules in other
    /// tables and, unless `keepingTables`, `inet pier` and `bridge pier`. Returns the number of
    /// accept rules and the tables deleted.
    public func uninstall(keepingTables: Bool) throws(FirewallError) -> (acceptRules: Int, tables: [String]) {
        let removed = try removeAll()
        var tables: [String] = []
        guard !keepingTables else { return (removed, tables) }
        for table in [PierTable.table, SpoofCheck.table] {
            var batch = Batch()
            batch.delete(table)
            do {
                try client.commit(batch)
                tables.append("\(table.family.name) \(table.name)")
            } catch  where error.isNotFound {}
        }
        return (removed, tables)
    }
}
