import Firewall
import NetNS
import Netlink

/// Every way a plugin core reaches the kernel, in one value the plugin takes as a parameter:
/// netlink sessions, nftables and conntrack clients, namespaces and /proc/sys. `system` is the
/// real kernel; unit tests pass sessions over a `RecordingTransport` that plays the kernel, so
/// each core's validation, planned requests, rollback and DEL are tested without root.
public struct PluginKernel {
    /// An rtnetlink session in the plugin's own network namespace (the host's).
    public var hostNetlink: () throws(NetlinkError) -> RouteNetlink
    /// An rtnetlink session bound inside `namespace`.
    public var netlink: (_ namespace: NetworkNamespace) throws(NetlinkError) -> RouteNetlink
    /// An nf_tables client in the plugin's own network namespace.
    public var nftables: () throws(FirewallError) -> NFTablesClient
    /// A ctnetlink client in the plugin's own network namespace.
    public var conntrack: () throws(FirewallError) -> ConntrackClient
    /// The namespace at a path (`CNI_NETNS`).
    public var openNamespace: (_ path: String) throws(NamespaceError) -> NetworkNamespace
    /// The plugin's own network namespace.
    public var currentNamespace: () throws(NamespaceError) -> NetworkNamespace
    /// A fresh private namespace that lives as long as its handle (probes, device moves).
    public var scratchNamespace: () throws(NamespaceError) -> NetworkNamespace
    /// Runs `body` with the /proc/sys of `namespace` (the plugin's own when nil), entering it
    /// once for all the reads and writes `body` makes.
    public var sysctls: (_ namespace: NetworkNamespace?, _ body: (SysctlAccess) throws -> Void) throws -> Void

    public init(
        hostNetlink: @escaping () throws(NetlinkError) -> RouteNetlink,
        netlink: @escaping (_ namespace: NetworkNamespace) throws(NetlinkError) -> RouteNetlink,
        nftables: @escaping () throws(FirewallError) -> NFTablesClient,
        conntrack: @escaping () throws(FirewallError) -> ConntrackClient,
        openNamespace: @escaping (_ path: String) throws(NamespaceError) -> NetworkNamespace,
        currentNamespace: @escaping () throws(NamespaceError) -> NetworkNamespace,
        scratchNamespace: @escaping () throws(NamespaceError) -> NetworkNamespace,
        sysctls: @escaping (_ namespace: NetworkNamespace?, _ body: (SysctlAccess) throws -> Void) throws -> Void
    ) {
        self.hostNetlink = hostNetlink
        self.netlink = netlink
        self.nftables = nftables
        self.conntrack = conntrack
        self.openNamespace = openNamespace
        self.currentNamespace = currentNamespace
        self.scratchNamespace = scratchNamespace
        self.sysctls = sysctls
    }

    /// The real kernel: sockets opened where asked, /proc/sys from a thread inside the namespace.
    public static var system: PluginKernel {
        // A plugin's DEL returns once its removals are committed, not once the kernel freed them.
        NetfilterRelease.detachAfterRemovals()
        return PluginKernel(
            hostNetlink: { () throws(NetlinkError) in try RouteNetlink() },
            netlink: { namespace throws(NetlinkError) in try RouteNetlink(namespace: namespace) },
            nftables: { () throws(FirewallError) in try NFTablesClient() },
            conntrack: { () throws(FirewallError) in try ConntrackClient() },
            openNamespace: { path throws(NamespaceError) in try NetworkNamespace.open(path: path) },
            currentNamespace: { () throws(NamespaceError) in try NetworkNamespace.current() },
            scratchNamespace: { () throws(NamespaceError) in try NetworkNamespace.createAnonymous() },
            sysctls: { namespace, body in
                let access = SysctlAccess(
                    read: { key in try Sysctl.read(key) }, write: { key, value in try Sysctl.write(key, value) })
                guard let namespace else { return try body(access) }
                try namespace.perform { try body(access) }
            })
    }

    /// `sysctls` for a body with a result.
    public func withSysctls<T>(in namespace: NetworkNamespace?, _ body: (SysctlAccess) throws -> T) throws -> T {
        var result: T?
        try sysctls(namespace) { access in result = try body(access) }
        guard let result else { preconditionFailure("PluginKernel.sysctls did not run its body") }
        return result
    }
}

/// Reads and writes `/proc/sys` entries of one namespace (keys as `Sysctl` takes them).
public struct SysctlAccess {
    public var read: (_ key: String) throws -> String
    public var write: (_ key: String, _ value: String) throws -> Void

    public init(read: @escaping (String) throws -> String, write: @escaping (String, String) throws -> Void) {
        self.read = read
        self.write = write
    }

    /// Writes only when the value differs, as `Sysctl.ensure` does.
    public func ensure(_ key: String, _ value: String) throws {
        if (try? read(key)) == value { return }
        try write(key, value)
    }
}
