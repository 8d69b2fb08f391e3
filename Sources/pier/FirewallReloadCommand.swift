import ArgumentParser
import Glibc
import PierState
import PierTables
import Plugins

/// `pier firewall-reload [--watch]`: puts Pier's nftables state back after other software
/// removed it (`nft flush ruleset`, a firewalld reload, `systemctl restart nftables`), from
/// libcni's result cache. Works for every runtime that shares that cache, not only `pier`.
struct FirewallReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "firewall-reload",
        abstract: "Rebuild Pier's nftables tables (inet pier, bridge pier) from the cached attachments.",
        discussion: """
            Every cached attachment whose network namespace still exists gets the nftables part of its ADD \
            again (masquerade and isolation of its network, published ports, spoof check, firewall plugin \
            elements); what is still in place is left as it is. Nothing outside Pier's tables is touched. \
            With --watch it keeps running and reloads whenever another program removes one of Pier's tables, \
            chains, rules or sets.
            """)

    @OptionGroup var globals: GlobalOptions

    @Flag(help: "Keep running: reload whenever Pier's nftables objects are removed (until SIGTERM).")
    var watch = false

    @Option(help: "With --watch: milliseconds without further removals before reloading.")
    var debounce: Int = 200

    func run() throws {
        guard watch else {
            if !reload() { throw ExitCode(1) }
            return
        }
        let watcher: PierTablesWatch
        do {
            watcher = try PierTablesWatch()
        } catch {
            throw PierFailure(message: "cannot watch nftables: \(error)")
        }
        // Subscribed first, then reloaded: a wipe between the two cannot go unnoticed.
        _ = reload()
        printError("pier firewall-reload: watching nftables")
        let quiet = Duration.milliseconds(max(0, debounce))
        var pendingSince: ContinuousClock.Instant?
        let clock = ContinuousClock()
        // A failed reload (a concurrent ADD changed the ruleset under it) is tried again a few
        // times, a second apart; the next removal starts over.
        var retriesLeft = 0
        while true {
            let event: PierTablesWatch.Event
            do { event = try watcher.next() } catch { throw PierFailure(message: "watching nftables: \(error)") }
            switch event {
            case .pierObjectRemoved, .overrun:
                // Debounced: a flush removes objects in bursts; one reload after the last.
                pendingSince = clock.now
                retriesLeft = 3
            case .unrelated, .quiet:
                break
            }
            if let since = pendingSince, clock.now - since >= quiet {
                pendingSince = nil
                printError("pier firewall-reload: Pier's nftables objects were removed; reloading")
                if !reload(), retriesLeft > 0 {
                    retriesLeft -= 1
                    pendingSince = clock.now + .seconds(1) - quiet
                }
            }
        }
    }

    /// One pass over the cache; false when some attachment could not be restored.
    private func reload() -> Bool {
        let environment = globals.environment
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
                    printError("pier: firewall-reload: \(name): \(reason)")
                    succeeded = false
                }
            }
        }
        // Under pier's lock, so no pier ADD or DEL runs meanwhile (a DEL's elements put back).
        if FileSystem.isDirectory(environment.root), let lock = try? FileLock(path: environment.lockPath) {
            do { try lock.withLock(pass) } catch {
                printError("pier: firewall-reload: \(error)")
                return false
            }
        } else {
            pass()
        }
        return succeeded
    }
}
