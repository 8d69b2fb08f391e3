import Glibc
import PierState

/// The embedded cluster store: a directory shared by every process on one machine (several
/// network namespaces acting as hosts). Layout:
///
///     <path>/lock          flock(LOCK_EX) around every mutation
///     <path>/revision      the store revision, decimal, bumped by every mutation
///     <path>/data/<key>    one file per key, `/` encoded as `%2F`; contents
///                          `<revision>\n<value>`
///
/// Every file is replaced atomically (temporary file + rename), so readers never need the
/// lock and a writer killed at any moment leaves either the old or the new record.
public final class FileClusterStore: ClusterStore {
    public let path: String
    private let dataPath: String
    private let lock: FileLock

    public init(path: String) throws(ClusterStoreError) {
        self.path = path
        self.dataPath = path + "/data"
        do {
            try FileSystem.makeDirectories(dataPath)
            lock = try FileLock(path: path + "/lock")
        } catch {
            throw ClusterStoreError(operation: "open file store at \(path)", error)
        }
    }

    public func get(_ key: String) throws(ClusterStoreError) -> StoreRecord? {
        try StoreKey.validate(key, operation: "get")
        return try readRecord(key, operation: "get \(key)")
    }

    public func list(prefix: String) throws(ClusterStoreError) -> StoreSnapshot {
        let operation = "list \(prefix)"
        // Read the revision first: records read afterwards are at least that new, so a
        // watcher resuming from it never misses a change.
        let revision = try readRevision(operation: operation)
        let names: [String]
        do {
            names = try FileSystem.list(dataPath) ?? []
        } catch {
            throw ClusterStoreError(operation: operation, error)
        }
        var records: [StoreRecord] = []
        for name in names where !name.hasPrefix(FileSystem.temporaryPrefix) {
            let key = Self.decode(name)
            guard key.hasPrefix(prefix), let record = try readRecord(key, operation: operation) else { continue }
            records.append(record)
        }
        return StoreSnapshot(records: records.sorted { $0.key < $1.key }, revision: revision)
    }

    public func create(_ key: String, value: String) throws(ClusterStoreError) -> StoreWriteResult {
        let operation = "create \(key)"
        try StoreKey.validate(key, operation: operation)
        return try mutate(operation) { () throws(ClusterStoreError) -> StoreWriteResult in
            if let current = try readRecord(key, operation: operation) { return .conflict(current: current) }
            return .written(try write(key, value: value, operation: operation))
        }
    }

    public func compareAndSwap(_ key: String, expectedRevision: UInt64, value: String) throws(ClusterStoreError)
        -> StoreWriteResult
    {
        let operation = "compare-and-swap \(key)@\(expectedRevision)"
        try StoreKey.validate(key, operation: operation)
        return try mutate(operation) { () throws(ClusterStoreError) -> StoreWriteResult in
            let current = try readRecord(key, operation: operation)
            guard let current, current.revision == expectedRevision else { return .conflict(current: current) }
            return .written(try write(key, value: value, operation: operation))
        }
    }

    @discardableResult
    public func put(_ key: String, value: String) throws(ClusterStoreError) -> StoreRecord {
        let operation = "put \(key)"
        try StoreKey.validate(key, operation: operation)
        return try mutate(operation) { () throws(ClusterStoreError) -> StoreRecord in
            try write(key, value: value, operation: operation)
        }
    }

    public func delete(_ key: String, ifValue expectedValue: String) throws(ClusterStoreError) -> StoreDeleteResult {
        let operation = "delete \(key)"
        try StoreKey.validate(key, operation: operation)
        return try mutate(operation) { () throws(ClusterStoreError) -> StoreDeleteResult in
            guard let current = try readRecord(key, operation: operation) else { return .absent }
            guard current.value == expectedValue else { return .notOwner(current: current) }
            do throws(FileSystemError) {
                try FileSystem.remove(dataPath + "/" + Self.encode(key))
            } catch {
                throw ClusterStoreError(operation: operation, error)
            }
            try bumpRevision(operation: operation)
            return .deleted
        }
    }

    public func waitForChange(after revision: UInt64, timeoutMilliseconds: Int) throws(ClusterStoreError) -> UInt64 {
        // Polling keeps the store free of daemons and inotify plumbing; 50 ms is far below
        // the latency anything reacting to endpoint changes cares about.
        var waited = 0
        while true {
            let current = try readRevision(operation: "watch")
            if current > revision || waited >= timeoutMilliseconds { return current }
            usleep(50_000)
            waited += 50
        }
    }

    public func checkHealth() throws(ClusterStoreError) {
        _ = try readRevision(operation: "health check")
        for directory in [path, dataPath] where !FileSystem.isWritable(directory) {
            throw ClusterStoreError(.io, operation: "health check", message: "\(directory) is not writable")
        }
    }

    // MARK: Internals

    private func mutate<T>(_ operation: String, _ body: () throws(ClusterStoreError) -> T) throws(ClusterStoreError)
        -> T
    {
        do {
            return try lock.withLock { () throws(ClusterStoreError) -> T in
                FileSystem.removeStrayTemporaries(in: dataPath)
                return try body()
            }
        } catch let error as ClusterStoreError {
            throw error
        } catch let error as FileSystemError {
            throw ClusterStoreError(operation: operation, error)
        } catch {
            throw ClusterStoreError(.io, operation: operation, message: "\(error)")
        }
    }

    /// Call with the lock held.
    private func write(_ key: String, value: String, operation: String) throws(ClusterStoreError) -> StoreRecord {
        // The record first, the revision after it: a lock-free reader that sees revision N
        // (and then lists) must find every record written at N, or a watcher resuming after
        // N would miss it for good.
        let revision = try readRevision(operation: operation) + 1
        let contents = Array("\(revision)\n".utf8) + Array(value.utf8)
        do {
            try FileSystem.replace(directory: dataPath, name: Self.encode(key), contents: contents)
        } catch {
            throw ClusterStoreError(operation: operation, error)
        }
        try bumpRevision(operation: operation)
        return StoreRecord(key: key, value: value, revision: revision)
    }

    /// Call with the lock held.
    @discardableResult
    private func bumpRevision(operation: String) throws(ClusterStoreError) -> UInt64 {
        let next = try readRevision(operation: operation) + 1
        do {
            try FileSystem.replace(directory: path, name: "revision", contents: Array(String(next).utf8))
        } catch {
            throw ClusterStoreError(operation: operation, error)
        }
        return next
    }

    private func readRevision(operation: String) throws(ClusterStoreError) -> UInt64 {
        let bytes: [UInt8]?
        do {
            bytes = try FileSystem.read(path + "/revision")
        } catch {
            throw ClusterStoreError(operation: operation, error)
        }
        guard let bytes else { return 0 }
        guard let revision = UInt64(String(decoding: bytes, as: UTF8.self)) else {
            throw ClusterStoreError(.corrupt, operation: operation, message: "unreadable \(path)/revision")
        }
        return revision
    }

    private func readRecord(_ key: String, operation: String) throws(ClusterStoreError) -> StoreRecord? {
        let bytes: [UInt8]?
        do {
            bytes = try FileSystem.read(dataPath + "/" + Self.encode(key))
        } catch {
            throw ClusterStoreError(operation: operation, error)
        }
        guard let bytes else { return nil }
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")),
            let revision = UInt64(String(decoding: bytes[..<newline], as: UTF8.self))
        else {
            throw ClusterStoreError(.corrupt, operation: operation, message: "unreadable record for \(key)")
        }
        let value = String(decoding: bytes[(newline + 1)...], as: UTF8.self)
        return StoreRecord(key: key, value: value, revision: revision)
    }

    /// Keys are validated to `[A-Za-z0-9_.:-/]`, so `%` never appears and the mapping is
    /// reversible; file names then hold no `/`.
    static func encode(_ key: String) -> String {
        key.split(separator: "/", omittingEmptySubsequences: false).joined(separator: "%2F")
    }

    static func decode(_ name: String) -> String {
        name.components(separatedByText: "%2F").joined(separator: "/")
    }
}
