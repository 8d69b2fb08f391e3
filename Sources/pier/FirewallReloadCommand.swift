import ArgumentParser
import Glibc
import PierState
import PierTables
import Plugins
import Runtime

/// `pier firewall reload|remove`: Pier's nftables state beside other software's.
struct FirewallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "firewall",
        abstract: "Restore or remove Pier's nftables state (its tables and its accept rule in other tables).",
        subcommands: [FirewallReloadCommand.self, FirewallRemoveCommand.self])
}

/// Options of `pier firewall reload`, shared with the older spelling `pier firewall-reload`.
struct FirewallReloadOptions: ParsableArguments {
    @Flag(help: "Keep running: restore whenever Pier's nftables state is removed (until SIGTERM).")
    var watch = false

    @Option(help: "With --watch: milliseconds without further removals before restoring.")
    var debounce: Int = 200
}

/// `pier firewall reload [--watch]`: puts Pier's nftables state back after other software
/// removed it (`nft flush ruleset`, a firewalld reload, `systemctl restart nftables`,
/// `iptables -F`), from libcni's result cache. Works for every runtime that shares that cache,
/// not only `pier`.
struct FirewallReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Rebuild Pier's nftables tables (inet pier, bridge pier) from the cached attachments.",
        discussion: """
            Every cached attachment whose network namespace still exists gets the nftables part of its ADD \
            again (masquerade and isolation of its network, published ports, spoof check, firewall plugin \
            elements); what is still in place is left as it is. Outside Pier's tables only one rule is \
            touched: Pier's accept rule for its own marked traffic in other tables' forward chains that drop \
            by default (an iptables FORWARD policy DROP, an inet filter table with policy drop). With --watch \
            it keeps running and restores whenever another program removes one of Pier's tables, chains, \
            rules or sets, or changes another table's forward chains.
            """)

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var options: FirewallReloadOptions

    func run() throws { try FirewallReloader(environment: globals.environment, options: options).run() }
}

/// The spelling of `pier firewall reload` before the `firewall` group existed; kept so unit
/// files and scripts that use it keep working.
struct FirewallReloadAlias: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "firewall-reload", abstract: "Same as `pier firewall reload`.", shouldDisplay: false)

    @OptionGroup var globals: GlobalOptions
    @OptionGroup var options: FirewallReloadOptions

    func run() throws { try FirewallReloader(environment: globals.environment, options: options).run() }
}

/// `pier firewall remove`: takes everything of Pier's out of nftables (uninstalling).
struct FirewallRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Delete Pier's accept rules from other tables, and Pier's tables unless --accept-rules-only.",
        discussion: """
            For uninstalling Pier: containers lose published ports, masquerade and isolation. Stop a running \
            `pier firewall reload --watch` first, or it puts everything back.
            """)

    @OptionGroup var globals: GlobalOptions

    @Flag(help: "Only delete Pier's accept rules from other tables; keep inet pier and bridge pier.")
    var acceptRulesOnly = false

    func run() throws {
        do {
            let removed = try ForeignForwardAccept().uninstall(keepingTables: acceptRulesOnly)
            let count = removed.acceptRules
            printLine("removed Pier's accept rule from \(count) chain\(count == 1 ? "" : "s") of other tables")
            for table in removed.tables { printLine("deleted table \(table)") }
        } catch {
            throw PierFailure(message: "firewall remove: \(error)")
        }
    }
}

/// One reload pass, or the watch loop around it.
struct FirewallReloader {
    let environment: RuntimeEnvironment
    let options: FirewallReloadOptions

    func run() throws {
        guard options.watch else {
            if !reload() { throw ExitCode(1) }
            return
        }
        let watcher: PierTablesWatch
        do {
            watcher = try PierTablesWatch(poll: .milliseconds(50))
        } catch {
            throw PierFailure(message: "cannot watch nftables: \(error)")
        }
        // Subscribed first, then reloaded: a wipe between the two cannot go unnoticed.
        _ = reload()
        printError("pier firewall reload: watching nftables")
        let quiet = Duration.milliseconds(max(0, options.debounce))
        let clock = ContinuousClock()
        var reloadSince: ContinuousClock.Instant?
        var reconcileSince: ContinuousClock.Instant?
        // A failed reload (a concurrent ADD changed the ruleset under it) is tried again a few
        // times, a second apart; the next removal starts over.
        var retriesLeft = 0
        while true {
            let event: PierTablesWatch.Event
            do { event = try watcher.next() } catch { throw PierFailure(message: "watching nftables: \(error)") }
            switch event {
            case .pierObjectRemoved, .overrun:
                // Debounced: a flush removes objects in bursts; one reload after the last.
                reloadSince = clock.now
                retriesLeft = 3
            case .foreignForwardChanged:
                reconcileSince = clock.now
            case .unrelated, .quiet:
                break
            }
            if let since = reloadSince, clock.now - since >= quiet {
                reloadSince = nil
                reconcileSince = nil
                printError("pier firewall reload: Pier's nftables objects were removed; reloading")
                if !reload(), retriesLeft > 0 {
                    retriesLeft -= 1
                    reloadSince = clock.now + .seconds(1) - quiet
                }
            } else if reloadSince == nil, let since = reconcileSince, clock.now - since >= quiet {
                reconcileSince = nil
                if let failure = reconcileForeignChains() {
                    printError("pier firewall reload: \(failure); trying again")
                    reconcileSince = clock.now + .seconds(1) - quiet
                }
            }
        }
    }

    /// Pier's accept rule in other tables' dropping forward chains (none once Pier's table is
    /// gone). Returns what went wrong, if anything.
    private func reconcileForeignChains() -> String? {
        do {
            try ForeignForwardAccept().reconcile()
            return nil
        } catch {
            return "other tables' forward chains: \(error)"
        }
    }

    /// One pass over the cache, then other tables' forward chains; false when something could
    /// not be restored.
    private func reload() -> Bool {
        var succeeded = true
        let pass = {
            // Read under the lock: an attachment a `pier rm` just removed is not put back.
            for (_, entry) in ResultCacheDirectory(cacheDirectory: environment.cacheDirectory).all() {
                let name = "\(entry.networkName)/\(entry.containerID)/\(entry.ifName)"
                switch FirewallReload.reapply(entry, pluginPath: environment.pluginPath) {
                case .reapplied(let plugins):
                    printLine("\(name): \(plugins.isEmpty ? "no nftables state" : plugins.joined(separator: ", "))")
                case .skipped(let reason):
                    printLine("\(name): skipped: \(reason)")
                case .failed(let reason):
                    printError("pier: firewall reload: \(name): \(reason)")
                    succeeded = false
                }
            }
        }
        // Under pier's lock, so no pier ADD or DEL runs meanwhile (a DEL's elements put back).
        if FileSystem.isDirectory(environment.root), let lock = try? FileLock(path: environment.lockPath) {
            do { try lock.withLock(pass) } catch {
                printError("pier: firewall reload: \(error)")
                return false
            }
        } else {
            pass()
        }
        // Services are pier's own state, not a cached ADD: their records are applied again.
        if FileSystem.isDirectory(environment.root) {
            for failure in ContainerManager(environment: environment).reapplyServices() {
                printError("pier: firewall reload: \(failure)")
                succeeded = false
            }
        }
        if let failure = reconcileForeignChains() {
            printError("pier: firewall reload: \(failure)")
            succeeded = false
        }
        return succeeded
    }
}
