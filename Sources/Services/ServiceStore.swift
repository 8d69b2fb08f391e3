import FoundationEssentials
import PierState

/// The service records of one `pier` state root. Every change runs in `update`, under one
/// flock, so two `pier` processes (a `run` and the watcher of a dying member) never lose each
/// other's member changes.
public struct ServiceStore: Sendable {
    public let layout: StateLayout

    public init(root: String) { self.layout = StateLayout(root: root) }

    /// Runs `body` holding the services lock.
    public func locked<T>(_ body: () throws(ServiceError) -> T) throws(ServiceError) -> T {
        do {
            try FileSystem.makeDirectories(layout.servicesDirectory)
            let lock = try FileLock(path: layout.servicesLockPath)
            var outcome: Result<T, ServiceError>?
            try lock.withLock { outcome = Result { () throws(ServiceError) in try body() } }
            guard let outcome else { throw ServiceError("services lock \(layout.servicesLockPath): not taken") }
            return try outcome.get()
        } catch let error as ServiceError {
            throw error
        } catch {
            throw ServiceError("services lock \(layout.servicesLockPath): \(error)")
        }
    }

    public func record(network: String, name: String) -> ServiceRecord? {
        guard let bytes = try? FileSystem.read(layout.servicePath(network: network, name: name)) else { return nil }
        return try? JSONDecoder().decode(ServiceRecord.self, from: Data(bytes))
    }

    /// Every record, by network then name.
    public func all() -> [ServiceRecord] {
        let networks = ((try? FileSystem.list(layout.servicesDirectory)) ?? nil) ?? []
        return networks.sorted().flatMap { network in
            let names = ((try? FileSystem.list(layout.serviceDirectory(network: network))) ?? nil) ?? []
            return names.filter { $0.hasSuffix(".json") }.sorted().compactMap { file in
                record(network: network, name: String(file.dropLast(5)))
            }
        }
    }

    /// Records naming `name` on any network (a name may be reused on several).
    public func records(named name: String) -> [ServiceRecord] { all().filter { $0.name == name } }

    public func save(_ record: ServiceRecord) throws(ServiceError) {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let bytes = Array(try encoder.encode(record))
            try FileSystem.makeDirectories(layout.serviceDirectory(network: record.network))
            // Atomic: a reader (inspect, the watcher) never sees half a record. /run is tmpfs.
            try FileSystem.replace(
                directory: layout.serviceDirectory(network: record.network), name: record.name + ".json",
                contents: bytes, durable: false)
        } catch {
            throw ServiceError("saving service \(record.name): \(error)")
        }
    }

    public func remove(network: String, name: String) {
        _ = try? FileSystem.remove(layout.servicePath(network: network, name: name))
    }
}
