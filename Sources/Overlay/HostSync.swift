import ClusterStore
import Glibc
import IPAddressing
import Netlink
import PierState

/// Device names derived from the VNI alone, so the plugin, the agent and DEL find them with no
/// other state: `pov-<vni hex>` (bridge) and `vx-<vni hex>` (VXLAN), both within IFNAMSIZ.
public enum OverlayDevices {
    public static func bridgeName(vni: UInt32) -> String { "pov-" + hex6(vni) }
    public static func vxlanName(vni: UInt32) -> String { "vx-" + hex6(vni) }
    /// Written to the VXLAN device's alias: which network owns the VNI on this host.
    public static func alias(network: String) -> String { "pier-overlay:" + network }

    static func hex6(_ vni: UInt32) -> String {
        let text = String(vni, radix: 16)
        return String(repeating: "0", count: max(0, 6 - text.count)) + text
    }
}

/// Serialises "list the store, then program the kernel" per network and per host (network
/// namespace), so a reconcile working from an older snapshot never undoes a newer one.
public struct HostLock {
    public static let defaultRunDirectory = DefaultPaths.overlayRunDirectory

    let lock: FileLock

    /// The lock file lives in `<runDirectory>/overlay/`.
    public init(network: String, runDirectory: String = HostLock.defaultRunDirectory) throws(ClusterStoreError) {
        let directory = runDirectory + "/overlay"
        var info = stat()
        // The netns inode tells namespaces acting as hosts apart; they share /run.
        let namespaceID = stat("/proc/thread-self/ns/net", &info) == 0 ? String(info.st_ino) : "0"
        do {
            try FileSystem.makeDirectories(directory)
            lock = try FileLock(path: "\(directory)/\(network).\(namespaceID).lock")
        } catch {
            throw ClusterStoreError(.io, operation: "open overlay lock", message: error.description, errno: error.errno)
        }
    }

    public func withLock<T>(_ body: () throws -> T) throws -> T {
        try lock.withLock { () throws -> T in try body() }
    }
}

/// One host's view of an overlay network: lists the network's records and reconciles the
/// local VXLAN device with them. Shared by the plugin (before ADD returns) and the agent.
public struct HostSync {
    public let keys: OverlayKeys
    public let store: any ClusterStore
    public let netlink: RouteNetlink
    /// This host's name in records, when known (the agent may run without it).
    public let localHost: String?

    public init(network: String, store: any ClusterStore, netlink: RouteNetlink, localHost: String?) {
        self.keys = OverlayKeys(network: network)
        self.store = store
        self.netlink = netlink
        self.localHost = localHost
    }

    public func state() throws(ClusterStoreError) -> OverlayState {
        OverlayState(snapshot: try store.list(prefix: keys.root), keys: keys)
    }

    /// Reconciles the device named for the network's VNI. Returns nil (and changes nothing)
    /// when the network has no record yet or this host has no device for it.
    public func reconcile(_ state: OverlayState) throws -> ReconcileReport? {
        guard let network = state.network,
            let device = try linkIfPresent(OverlayDevices.vxlanName(vni: network.vni)),
            device.kind == .vxlan, let localVTEP = device.vxlan?.local
        else { return nil }
        let desired = state.remoteEntries(localHost: localHost, localVTEP: localVTEP)
        var report = try Reconciler(netlink: netlink, vxlanIndex: device.index).apply(desired)
        if let bridgeIndex = device.masterIndex {
            announce(report.neighborsAdded, desired: desired, bridgeIndex: bridgeIndex, report: &report)
        }
        return report
    }

    /// Tells this host's containers where each newly installed remote address now is. An
    /// address may have been freed and handed out again on another host a moment ago: local
    /// containers that talked to its previous owner hold a REACHABLE neighbour entry with the
    /// old MAC, and the new owner's own gratuitous ARP or NA never crosses the VXLAN device.
    /// So the host speaks for the remote endpoint: a gratuitous ARP reply / unsolicited NA sent
    /// out of the bridge reaches every local port (the VXLAN port drops it), and a neighbour
    /// with an entry for the address takes the new MAC; one without ignores it. Best effort:
    /// a failure is reported, and the kernel's neighbour state machine still recovers by itself.
    private func announce(
        _ addresses: [IPAddress], desired: DesiredEntries, bridgeIndex: Int32, report: inout ReconcileReport
    ) {
        let announcements = desired.announcements(of: addresses)
        guard !announcements.isEmpty else { return }
        do {
            try LinkLayerSender().announce(announcements, index: bridgeIndex)
            report.announced = announcements.map(\.address)
        } catch {
            report.announceFailure = error.description
        }
    }

    /// List and reconcile under the host lock.
    public func sync(lock: HostLock) throws -> (OverlayState, ReconcileReport?) {
        try lock.withLock {
            let current = try state()
            return (current, try reconcile(current))
        }
    }

    private func linkIfPresent(_ name: String) throws -> Link? {
        do { return try netlink.link(named: name) } catch {
            if error.isNotFound { return nil }
            throw error
        }
    }
}
