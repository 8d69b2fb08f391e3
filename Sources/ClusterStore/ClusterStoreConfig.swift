import Glibc
import PierState

/// How a plugin reaches the cluster store, as written in network configs:
///
///     "store": {"type": "file", "path": "/var/lib/pier/store", "host": "node-a"}
///     "store": {"type": "etcd", "endpoints": ["http://10.0.0.1:2379"], "prefix": "/pier"}
///     "store": {"type": "etcd", "endpoints": ["https://10.0.0.1:2379"], "trustedCAFile": "/etc/pier/ca.pem",
///               "certFile": "/etc/pier/client.pem", "keyFile": "/etc/pier/client-key.pem"}
///
/// Shared by `ipam` and `vxlan-overlay`, so both find the same store from the same keys (IPAM reads
/// them from a config).
public struct ClusterStoreConfig: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        /// The embedded directory store (one machine, namespaces acting as hosts).
        case file
        /// An etcd v3 cluster, spoken to over its HTTP/JSON gateway (plain or TLS).
        case etcd
    }

    public static let defaultPath = DefaultPaths.clusterStoreDirectory
    public static let defaultEndpoints = ["http://127.0.0.1:2379"]

    public var type: Kind
    /// The file store's directory.
    public var path: String?
    /// etcd client URLs (`http://host:port` or `https://host:port`), tried in order.
    public var endpoints: [String]?
    /// etcd: every key is stored as `<prefix>/<key>`, so several clusters can share one etcd.
    public var prefix: String?
    /// etcd: how long one request may take before the store counts as unreachable.
    public var timeoutMilliseconds: Int?
    /// This host's name in records it writes; defaults to the kernel host name (which each
    /// network namespace acting as a host may set on its own UTS namespace).
    public var host: String?
    /// etcd: TLS files and user/password (`trustedCAFile`, `certFile`, `keyFile`, `username`,
    /// `password`).
    public var security: EtcdSecurity

    public init(
        type: Kind, path: String? = nil, endpoints: [String]? = nil, prefix: String? = nil,
        timeoutMilliseconds: Int? = nil, host: String? = nil, security: EtcdSecurity = EtcdSecurity()
    ) {
        self.security = security
        self.type = type
        self.path = path
        self.endpoints = endpoints
        self.prefix = prefix
        self.timeoutMilliseconds = timeoutMilliseconds
        self.host = host
    }

    /// The host name records are written under, validated as one key segment.
    public func resolvedHost() throws(ClusterStoreError) -> String {
        let name = host ?? Self.kernelHostName()
        guard StoreKey.isValidSegment(name) else {
            throw ClusterStoreError(
                .invalidArgument, operation: "store host name",
                message: "invalid host name \"\(name)\": want [A-Za-z0-9_.:-]")
        }
        return name
    }

    /// True when both configs reach the same data (the host name may differ).
    public func sameLocation(as other: ClusterStoreConfig) -> Bool {
        switch (type, other.type) {
        case (.file, .file): return (path ?? Self.defaultPath) == (other.path ?? Self.defaultPath)
        case (.etcd, .etcd):
            return Set(endpoints ?? Self.defaultEndpoints) == Set(other.endpoints ?? Self.defaultEndpoints)
                && (prefix ?? "") == (other.prefix ?? "")
        default: return false
        }
    }

    /// Opens the configured store. Nothing is contacted yet: an etcd store connects on use.
    public func open() throws(ClusterStoreError) -> any ClusterStore {
        switch type {
        case .file:
            let directory = path ?? Self.defaultPath
            guard directory.hasPrefix("/") else {
                throw ClusterStoreError(
                    .invalidArgument, operation: "open store",
                    message: "store path \"\(directory)\" must be absolute")
            }
            return try FileClusterStore(path: directory)
        case .etcd:
            return try EtcdClusterStore(
                endpoints: endpoints ?? Self.defaultEndpoints, prefix: prefix ?? "",
                timeoutMilliseconds: timeoutMilliseconds ?? 3000, security: security)
        }
    }

    /// This machine's (this UTS namespace's) host name: the default identity of a host.
    public static func kernelHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return buffer.withUnsafeBufferPointer { pointer in
            pointer.baseAddress.map { String(cString: $0) } ?? "localhost"
        }
    }
}
