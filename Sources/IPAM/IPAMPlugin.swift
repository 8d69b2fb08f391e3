import CNI
import IPAddressing

#if canImport(Glibc)
    import Glibc
#endif

/// The verbs of the `ipam` plugin: request parsing here, allocation in `AddressManager`. Lives in
/// the module (not the executable) so interface plugins can run it in-process (`IPAMCall`).
public struct IPAMPlugin: CNIPlugin {
    public init() {}

    public var about: String { "Pier ipam plugin (host-local and static compatible)" }

    public func add(_ request: CNIRequest) throws -> CNIResult {
        try addNotingFirstUse(request).result
    }

    /// ADD that also names the addresses handed out for the first time (`IPAMResult.IP.isFirstUse`).
    public func addNotingFirstUse(_ request: CNIRequest) throws -> (result: CNIResult, firstUse: [IPAddress]) {
        let allocated = try AddressManager(config: settings(request)).add(attachment(request))
        return (
            allocated.cniResult(version: request.cniVersion),
            allocated.ips.filter(\.isFirstUse).map(\.address.address)
        )
    }

    public func delete(_ request: CNIRequest) throws {
        try release(request)
    }

    /// DEL that reports the addresses it gave up, so an interface plugin running this
    /// in-process can forget their conntrack state even without a prevResult.
    @discardableResult
    public func release(_ request: CNIRequest) throws -> [IPAddress] {
        try AddressManager(config: settings(request)).release(attachment(request)).map(\.address)
    }

    public func check(_ request: CNIRequest) throws {
        try AddressManager(config: settings(request)).check(attachment(request))
    }

    public func garbageCollect(_ request: CNIRequest) throws {
        try collectGarbage(request)
    }

    /// GC that reports the addresses it released.
    @discardableResult
    public func collectGarbage(_ request: CNIRequest) throws -> [IPAddress] {
        // Without either attachment key there is no statement of what is valid; releasing
        // everything on a malformed request would be far worse than doing nothing.
        guard let valid = request.config.validAttachments else {
            cniLog("ipam: GC without cni.dev/valid-attachments; nothing released")
            return []
        }
        let released = try AddressManager(config: settings(request)).collectGarbage(
            keeping: valid.map(LeaseOwner.init))
        for lease in released { cniLog("ipam: GC released \(lease)") }
        return released.map(\.address)
    }

    public func status(_ request: CNIRequest) throws {
        try AddressManager(config: settings(request)).status()
    }

    private func attachment(_ request: CNIRequest) -> LeaseOwner {
        LeaseOwner(Attachment(request))
    }

    /// Settings from stdin plus the CNI_ARGS `IP=`/`GATEWAY=` keys and the version-converted
    /// prevResult (static CHECK compares against it).
    private func settings(_ request: CNIRequest) throws -> IPAMSettings {
        let args = try request.environment.args()
        var settings = try IPAMSettings(
            config: request.config.raw, environmentIPs: args["IP"].map { [$0] } ?? [],
            environmentGateways: args["GATEWAY"].map { [$0] } ?? [])
        if let previous = request.prevResult { settings.previousAddresses = previous.ips.map(\.address) }
        return settings
    }
}

/// Calls the network's IPAM: Pier's own `ipam` runs in this process when the `ipam` a runtime
/// would exec from CNI_PATH is the one installed beside this plugin — the same code on the same
/// lease store, one process start-up (~4 ms) less per ADD and DEL. Any other delegate, or
/// another `ipam` earlier on CNI_PATH, is exec'd as the protocol describes.
public enum IPAMCall {
    public static func add(_ request: CNIRequest) throws -> CNIResult {
        try addNotingFirstUse(request).result
    }

    /// ADD that also names the addresses handed out for the first time ever, which need no
    /// announcement; known only for Pier's own IPAM in-process, otherwise empty.
    public static func addNotingFirstUse(_ request: CNIRequest) throws -> (result: CNIResult, firstUse: [IPAddress]) {
        if runsInProcess(request) { return try IPAMPlugin().addNotingFirstUse(request) }
        return (try request.delegateAdd(), [])
    }

    /// Returns the addresses released when they are known (Pier's own IPAM, in-process);
    /// an exec'd delegate does not say.
    @discardableResult
    public static func delete(_ request: CNIRequest) throws -> [IPAddress] {
        if runsInProcess(request) { return try IPAMPlugin().release(request) }
        try request.delegateDelete()
        return []
    }

    public static func check(_ request: CNIRequest) throws {
        if runsInProcess(request) { return try IPAMPlugin().check(request) }
        try request.delegateCheck()
    }

    /// Like `delete`, returns the addresses released when they are known.
    @discardableResult
    public static func garbageCollect(_ request: CNIRequest) throws -> [IPAddress] {
        if runsInProcess(request) { return try IPAMPlugin().collectGarbage(request) }
        try request.delegateGarbageCollect()
        return []
    }

    public static func status(_ request: CNIRequest) throws {
        if runsInProcess(request) { return try IPAMPlugin().status(request) }
        try request.delegateStatus()
    }

    /// Pier's ipam runs in this process when the executable the runtime would exec for
    /// `ipam.type` is this very file: Pier's plugins are one executable linked under every name
    /// (`host-local` included), so "the same inode as /proc/self/exe" is exactly "Pier's own".
    /// Any other delegate on CNI_PATH (the reference host-local, a third-party IPAM) is exec'd.
    static func runsInProcess(_ request: CNIRequest) -> Bool {
        guard let type = request.config.ipam?.type, type == "ipam" || type == "host-local",
            let found = try? PluginExec.find(type, in: request.environment.path)
        else { return false }
        return isThisExecutable(found)
    }

    private static func isThisExecutable(_ path: String) -> Bool {
        var candidate = stat()
        var this = stat()
        guard stat(path, &candidate) == 0, stat(PluginExec.ownExecutable, &this) == 0 else { return false }
        return candidate.st_dev == this.st_dev && candidate.st_ino == this.st_ino
    }
}
