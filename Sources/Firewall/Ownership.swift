#if canImport(Glibc)
    import Glibc
#endif

extension NFTablesClient {
    /// Commits `changes` (typically set elements) together with `setup` (idempotent
    /// table/chain/set creation) and those of `rules` that are not in their chain yet, in one
    /// generation-checked batch. Rules are identified by their comment, which is therefore
    /// required; a rule whose comment is already present in its chain is left alone, so running
    /// this twice never duplicates a rule. Returns the rules that were added.
    ///
    /// When every rule is present the layout exists (the rules live in its chains and name its
    /// sets), so `setup` is left out: re-creating an existing chain is an update transaction
    /// the kernel releases after an RCU grace period, which the process then waits for when its
    /// netfilter socket closes. Should an object be missing after all (the commit fails with
    /// ENOENT), the batch is sent again with `setup`.
    @discardableResult
    public func apply(_ setup: Batch, ensuring rules: [Rule], changes: Batch = Batch()) throws(FirewallError) -> [Rule]
    {
        for rule in rules where rule.comment == nil {
            throw FirewallError(
                "ensure rule", object: "\(rule.family.name) \(rule.table) \(rule.chain) (rule without comment)",
                errno: EINVAL)
        }
        do {
            return try apply(setup, ensuring: rules, changes: changes, alwaysIncludingSetup: rules.isEmpty)
        } catch  where error.isNotFound && !rules.isEmpty {
            return try apply(setup, ensuring: rules, changes: changes, alwaysIncludingSetup: true)
        }
    }

    private func apply(
        _ setup: Batch, ensuring rules: [Rule], changes: Batch, alwaysIncludingSetup: Bool
    ) throws(FirewallError) -> [Rule] {
        var added: [Rule] = []
        try withGenerationCheck { _ throws(FirewallError) in
            added = []
            var present: [String: Set<String>] = [:]
            for rule in rules {
                let chainKey = "\(rule.family.rawValue) \(rule.table) \(rule.chain)"
                if present[chainKey] == nil {
                    do throws(FirewallError) {
                        let existing = try self.rules(family: rule.family, table: rule.table, chain: rule.chain)
                        present[chainKey] = Set(existing.compactMap(\.comment))
                    } catch  where error.isNotFound {
                        // The chain (or table) is created by `setup` in this very batch.
                        present[chainKey] = []
                    }
                }
                let comment = UserData.normalizedComment(rule.comment ?? "")
                if present[chainKey]?.contains(comment) == true { continue }
                present[chainKey]?.insert(comment)
                added.append(rule)
            }
            var batch = Batch()
            if alwaysIncludingSetup || !added.isEmpty { batch.append(contentsOf: setup) }
            for rule in added { batch.add(rule) }
            batch.append(contentsOf: changes)
            return batch
        }
        return added
    }

    /// Deletes every element of `set` whose comment is `owner`, and nothing else, even if
    /// other processes change the set concurrently: an element replaced by someone else
    /// between the read and the delete makes the generation check fail, and the retry
    /// reads again. Returns the elements deleted. Intervals (two kernel elements each) are
    /// not supported here; delete those by prefix.
    @discardableResult
    public func deleteElements(ownedBy owner: String, from set: SetPath) throws(FirewallError) -> [ElementRecord] {
        try deleteElements(from: set, ownedBy: owner) { _ in true }
    }

    /// Deletes those of `keys` whose element in `set` is tagged `owner`; keys that are absent
    /// or belong to someone else are left alone. Returns the elements deleted.
    @discardableResult
    public func deleteElements(
        keys: [[SetValue]], ownedBy owner: String, from set: SetPath
    ) throws(FirewallError) -> [ElementRecord] {
        let tag = UserData.normalizedComment(owner)
        var deleted: [ElementRecord] = []
        try withGenerationCheck { _ throws(FirewallError) in
            deleted = []
            for key in keys {
                let found: ElementRecord?
                do throws(FirewallError) {
                    found = try element(key, in: set)
                } catch  where error.isNotFound {
                    found = nil
                }
                if let found, found.comment == tag { deleted.append(found) }
            }
            var batch = Batch()
            batch.deleteElements(deleted, from: set)
            return batch
        }
        return deleted
    }

    /// Deletes the rules of a chain whose comment is `comment` (e.g. when a network goes
    /// away). Returns how many were deleted; a missing chain or table counts as none.
    @discardableResult
    public func deleteRules(
        commented comment: String, family: TableFamily, table: String, chain: String
    ) throws(FirewallError) -> Int {
        let tag = UserData.normalizedComment(comment)
        var count = 0
        try withGenerationCheck { _ throws(FirewallError) in
            var batch = Batch()
            let existing: [RuleRecord]
            do throws(FirewallError) {
                existing = try rules(family: family, table: table, chain: chain)
            } catch  where error.isNotFound {
                existing = []
            }
            let matching = existing.filter { $0.comment == tag }
            for rule in matching {
                batch.deleteRule(family: family, table: table, chain: chain, handle: rule.handle)
            }
            count = matching.count
            return batch
        }
        return count
    }

    private func deleteElements(
        from set: SetPath, ownedBy owner: String, where include: (ElementRecord) -> Bool
    ) throws(FirewallError) -> [ElementRecord] {
        // A whole-set dump: right for DEL/GC by owner alone; `deleteElements(keys:...)` is the
        // cheaper path when the caller knows its keys.
        let tag = UserData.normalizedComment(owner)
        var deleted: [ElementRecord] = []
        try withGenerationCheck { _ throws(FirewallError) in
            let all: [ElementRecord]
            do throws(FirewallError) {
                all = try elements(of: set)
            } catch  where error.isNotFound {
                // DEL must succeed when the set (or table) is already gone.
                all = []
            }
            let owned = all.filter { $0.comment == tag && !$0.isIntervalEnd && include($0) }
            deleted = owned
            var batch = Batch()
            batch.deleteElements(withClosingElements(owned, among: all), from: set)
            return batch
        }
        return deleted
    }

    /// In an interval set an owned range is a start element plus an untagged end element:
    /// the end is the smallest end key above the start (ranges never overlap; keys are
    /// big-endian, so byte order is numeric order). A range running to the last value has none.
    /// Each end follows its start, the order nft sends them in and the kernel expects.
    private func withClosingElements(_ owned: [ElementRecord], among all: [ElementRecord]) -> [ElementRecord] {
        let ends = all.filter(\.isIntervalEnd)
        guard !ends.isEmpty else { return owned }
        return owned.flatMap { start in
            let end = ends.filter { start.key.lexicographicallyPrecedes($0.key) }
                .min { $0.key.lexicographicallyPrecedes($1.key) }
            return [start] + (end.map { [$0] } ?? [])
        }
    }
}
