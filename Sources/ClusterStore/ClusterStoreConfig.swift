import Glibc

/// How a plugin reaches the cluster store, as written in network configs:
///
///     "store": {"type": "file", "path": "/var/lib/pier/store", "host": "node-a"}
///
/// Shared by `ipam` and `vxlan-overlay`, so both find the same store from the same keys.
public struct ClusterStoreConfig: Sendable, Hashable, Decodable {
    public enum Kind: String, Sendable, Hashable, Decodable {
        /// The embedded directory store (one machine, namespaces acting as hosts).
        case file
        /// Reserved for the etcd v3 store; not built yet, so it is rejected with a clear message.
        case etcd
    }

    public static let defaultPath = "/var/lib/pier/store"

    public var type: Kind
    /// The file store's directory.
    public var path: String?
    /// This host's name in records it writes; defaults to the kernel host name (which each
    /// network namespace acting as a host may set on its own UTS namespace).
    public var host: String?

    public init(type: Kind, path: String? = nil, host: String? = nil) {
        self.type = type
        self.path = path
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

    /// Opens the configured store.
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
            throw ClusterStoreError(
                .invalidArgument, operation: "open store",
                message: "store type \"etcd\" is not available in this build; use \"file\"")
        }
    }

    static func kernelHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return buffer.withUnsafeBufferPointer { pointer in
            pointer.baseAddress.map { String(cString: $0) } ?? "localhost"
        }
    }
}
