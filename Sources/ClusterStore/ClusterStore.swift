import PierState

/// One key's current value and the store revision that last wrote it.
public struct StoreRecord: Sendable, Hashable {
    public let key: String
    /// Opaque UTF-8 text; Pier writes JSON objects.
    public let value: String
    /// The store-wide revision of the write that produced this value (etcd's `mod_revision`).
    public let revision: UInt64

    public init(key: String, value: String, revision: UInt64) {
        self.key = key
        self.value = value
        self.revision = revision
    }
}

/// The records under a prefix as of one store revision (to resume a watch from).
public struct StoreSnapshot: Sendable, Hashable {
    public let records: [StoreRecord]
    public let revision: UInt64

    public init(records: [StoreRecord], revision: UInt64) {
        self.records = records
        self.revision = revision
    }
}

/// The outcome of a conditional write.
public enum StoreWriteResult: Sendable, Hashable {
    case written(StoreRecord)
    /// The condition failed; `current` is what the key holds now (nil when absent).
    case conflict(current: StoreRecord?)
}

/// The outcome of a conditional delete.
public enum StoreDeleteResult: Sendable, Hashable {
    case deleted
    case absent
    /// Someone else owns the key now; nothing was deleted.
    case notOwner(current: StoreRecord)
}

/// Shared state for multi-host features: IPAM addresses that must be unique across hosts,
/// overlay endpoint and host records.
///
/// The operations are the ones etcd v3 offers as single transactions, so an etcd store can
/// implement each as one `Txn` (compare `create_revision == 0` / `mod_revision == r` /
/// `value == v`, then put or delete) or one `Range`, and `waitForChange` as a `Watch` from a
/// revision. No operation needs a lock held across calls: callers retry on conflict.
///
/// Keys are `/`-separated segments of `[A-Za-z0-9_.:-]` (see `StoreKey.validate`).
public protocol ClusterStore: AnyObject {
    func get(_ key: String) throws(ClusterStoreError) -> StoreRecord?

    /// Every record whose key starts with `prefix`, sorted by key.
    func list(prefix: String) throws(ClusterStoreError) -> StoreSnapshot

    /// Writes `value` only when `key` does not exist (create-if-absent).
    func create(_ key: String, value: String) throws(ClusterStoreError) -> StoreWriteResult

    /// Writes `value` only when `key` still has `expectedRevision` (compare-and-swap).
    func compareAndSwap(_ key: String, expectedRevision: UInt64, value: String) throws(ClusterStoreError)
        -> StoreWriteResult

    /// Writes unconditionally, for hints that are harmless to lose or overwrite.
    @discardableResult
    func put(_ key: String, value: String) throws(ClusterStoreError) -> StoreRecord

    /// Deletes `key` only while it still holds `expectedValue` (delete-if-owner): an owner
    /// releasing late never removes a record someone else has taken since.
    func delete(_ key: String, ifValue expectedValue: String) throws(ClusterStoreError) -> StoreDeleteResult

    /// The watch hook: blocks until the store revision passes `revision` or `timeoutMilliseconds`
    /// elapse, and returns the current revision. Watchers then re-list and reconcile, which
    /// stays correct across missed events and restarts.
    func waitForChange(after revision: UInt64, timeoutMilliseconds: Int) throws(ClusterStoreError) -> UInt64

    /// Throws unless the store can take writes now (for CNI STATUS); etcd would check the
    /// cluster's health endpoint.
    func checkHealth() throws(ClusterStoreError)
}

/// Why a store operation failed.
public struct ClusterStoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Hashable {
        /// The key or configuration is malformed; retrying will not help.
        case invalidArgument
        /// The store could not be read or written.
        case io
        /// A record on disk (or from a server) could not be parsed.
        case corrupt
        /// The store cannot be reached or has no quorum now; retrying later may help.
        case unavailable
    }

    public let kind: Kind
    /// What was attempted, e.g. `create /pier/ipam/net1/10.0.0.5`.
    public let operation: String
    public let message: String
    public let errno: Int32?

    public init(_ kind: Kind, operation: String, message: String, errno: Int32? = nil) {
        self.kind = kind
        self.operation = operation
        self.message = message
        self.errno = errno
    }

    init(operation: String, _ error: FileSystemError) {
        self.init(.io, operation: operation, message: error.description, errno: error.errno)
    }

    public var description: String { "cluster store: \(operation): \(message)" }
}

/// Key syntax shared by every store, so keys stay valid etcd keys and safe file names.
public enum StoreKey {
    public static func validate(_ key: String, operation: String) throws(ClusterStoreError) {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        let valid =
            !key.isEmpty && key.utf8.count <= 1024
            && segments.allSatisfy { segment in
                !segment.isEmpty && segment != "." && segment != ".."
                    && segment.utf8.allSatisfy { isKeyByte($0) }
            }
        guard valid else {
            throw ClusterStoreError(
                .invalidArgument, operation: operation,
                message: "invalid key \"\(key)\": want /-separated segments of [A-Za-z0-9_.:-]")
        }
    }

    /// One segment: a host or network name that is embedded in keys.
    public static func isValidSegment(_ segment: String) -> Bool {
        !segment.isEmpty && segment != "." && segment != ".." && segment.utf8.count <= 255
            && segment.utf8.allSatisfy { isKeyByte($0) }
    }

    static func isKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"),
            UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}
