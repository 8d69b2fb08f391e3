import ClusterStore
import Glibc
import Netlink
import Synchronization

/// `pier agent`: keeps this host's FDB and neighbour entries of one overlay network in line
/// with the store. It resyncs fully at start (removing stale entries), then after every store
/// change, and every `resyncSeconds` regardless, to repair entries someone removed by hand.
public struct OverlayAgent {
    public var network: String
    public var store: any ClusterStore
    public var localHost: String?
    public var resyncSeconds: Int = 30
    /// Where the per-host lock shared with the plugin lives (the plugin's `runDir`).
    public var runDirectory = HostLock.defaultRunDirectory
    public var log: (String) -> Void
    /// Called after every wait on the store (at most `tickMilliseconds` apart) with whether the
    /// store changed: `pier agent` hangs the network's services on it.
    public var onTick: ((_ storeChanged: Bool) -> Void)?
    public var tickMilliseconds = 500

    public init(network: String, store: any ClusterStore, localHost: String?, log: @escaping (String) -> Void) {
        self.network = network
        self.store = store
        self.localHost = localHost
        self.log = log
    }

    /// Blocks until SIGTERM or SIGINT. Store outages are logged and retried, never fatal:
    /// the kernel keeps its last good entries meanwhile.
    public func run() throws {
        AgentSignals.install()
        let netlink = try RouteNetlink()
        let lock = try HostLock(network: network, runDirectory: runDirectory)
        let sync = HostSync(network: network, store: store, netlink: netlink, localHost: localHost)
        var revision: UInt64 = 0
        var needsSync = true
        var lastSync = 0
        var lastError = ""
        var hadDevice: Bool?
        log("agent for overlay network \(network) started")
        while !AgentSignals.stopRequested {
            let now = monotonicSeconds()
            if needsSync || now - lastSync >= resyncSeconds {
                do {
                    let (state, report) = try sync.sync(lock: lock)
                    revision = state.revision
                    lastSync = now
                    needsSync = false
                    lastError = ""
                    describe(state, report, hadDevice: &hadDevice)
                } catch {
                    // Logged once per distinct error, so an outage does not flood stderr.
                    if "\(error)" != lastError { log("sync failed (retrying): \(error)") }
                    lastError = "\(error)"
                    sleepMilliseconds(500)
                    continue
                }
            }
            do {
                let current = try store.waitForChange(after: revision, timeoutMilliseconds: tickMilliseconds)
                if current > revision { needsSync = true }
                onTick?(current > revision)
            } catch {
                if "\(error)" != lastError { log("watch failed (retrying): \(error)") }
                lastError = "\(error)"
                needsSync = true
                sleepMilliseconds(500)
            }
        }
        log("agent for overlay network \(network) stopped")
    }

    private func describe(_ state: OverlayState, _ report: ReconcileReport?, hadDevice: inout Bool?) {
        // "No device" is logged when it becomes true, not on every store change.
        if hadDevice != (report != nil) && report == nil {
            log("revision \(state.revision): no VXLAN device for \(network) on this host yet; waiting for an ADD")
        }
        hadDevice = report != nil
        if let report, !report.isEmpty { log("revision \(state.revision): \(report)") }
        for key in state.unreadable { log("ignoring unreadable record \(key)") }
    }
}

/// SIGTERM/SIGINT set a flag the loop checks; the handler is installed without SA_RESTART so
/// a blocking wait returns at once with EINTR.
enum AgentSignals {
    private static let flag = Atomic<Bool>(false)

    static var stopRequested: Bool { flag.load(ordering: .relaxed) }

    static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in AgentSignals.flag.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGTERM, &action, nil)
        sigaction(SIGINT, &action, nil)
        // A parent may have started us with these blocked; a handler alone would never run.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGTERM)
        sigaddset(&unblock, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
    }
}

func monotonicSeconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec
}

func sleepMilliseconds(_ milliseconds: Int) {
    var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR && !AgentSignals.stopRequested {
        request = remaining
    }
}
