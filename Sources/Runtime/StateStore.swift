import FoundationEssentials
import Glibc
import PierState

/// Container records under `<root>/containers/<id>/`, one JSON file each, written atomically. Every
/// command that changes state holds the store's lock, so concurrent `pier` processes serialize.
public struct StateStore: Sendable {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    var layout: StateLayout { StateLayout(root: root) }

    var containersDirectory: String { layout.containersDirectory }

    public func directory(of id: String) -> String { layout.containerDirectory(id: id) }

    func statePath(of id: String) -> String { layout.recordPath(id: id) }

    func pidPath(of id: String) -> String { layout.pidPath(id: id) }

    func logPath(of id: String) -> String { layout.logPath(id: id) }

    /// Takes the store-wide lock. See `FileLock` for why plugins inherit it.
    func lock() throws(RuntimeError) -> FileLock {
        try Files.makeDirectories(root, mode: 0o700)
        return try FileLock(path: layout.lockPath, inheritable: true)
    }

    public func save(_ record: ContainerRecord) throws(RuntimeError) {
        try Files.makeDirectories(directory(of: record.id), mode: 0o700)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(record) } catch {
            throw RuntimeError.failed("encoding the state of \(record.name): \(error)")
        }
        try Files.writeAtomically([UInt8](data), to: statePath(of: record.id), mode: 0o600)
    }

    public func load(id: String) -> ContainerRecord? {
        guard let bytes = try? Files.read(statePath(of: id)) else { return nil }
        return try? JSONDecoder().decode(ContainerRecord.self, from: Data(bytes))
    }

    /// Every record, oldest first; records created in the same second by name, so the order is stable.
    public func all() -> [ContainerRecord] {
        Files.list(containersDirectory).compactMap { load(id: $0) }.sorted {
            ($0.created, $0.name, $0.id) < ($1.created, $1.name, $1.id)
        }
    }

    /// A container by exact name, full ID or unambiguous ID prefix (as Docker resolves them).
    public func find(_ reference: String) throws(RuntimeError) -> ContainerRecord {
        let records = all()
        if let byName = records.first(where: { $0.name == reference }) { return byName }
        if let byID = records.first(where: { $0.id == reference }) { return byID }
        let matches = reference.count >= 3 ? records.filter { $0.id.hasPrefix(reference) } : []
        guard matches.count == 1 else {
            if matches.count > 1 { throw RuntimeError.invalidArgument("ambiguous container ID prefix \(reference)") }
            throw RuntimeError.unknownContainer(reference)
        }
        return matches[0]
    }

    public func remove(id: String) {
        Files.removeTree(directory(of: id))
    }
}

/// Random 64-hex-digit IDs like Docker's.
enum ContainerID {
    static func generate() -> String {
        // The system generator reads getrandom(2) on Linux.
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// Docker's name rule, which also keeps names safe as file and netns names.
    static func validateName(_ name: String) throws(RuntimeError) {
        guard !name.isEmpty, name.utf8.count <= 64 else {
            throw RuntimeError.invalidName(name, reason: "must be 1 to 64 characters")
        }
        let bytes = Array(name.utf8)
        func isAlnum(_ byte: UInt8) -> Bool {
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
        }
        guard isAlnum(bytes[0]), bytes.allSatisfy({ isAlnum($0) || $0 == 95 || $0 == 46 || $0 == 45 }) else {
            throw RuntimeError.invalidName(name, reason: "only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed")
        }
    }

    static let adjectives = ["brave", "calm", "eager", "fond", "keen", "lucid", "quiet", "swift", "tidy", "witty"]
    static let nouns = ["anchor", "buoy", "dock", "harbor", "jetty", "keel", "mast", "pier", "quay", "wharf"]

    /// A readable default name; the ID suffix keeps it unique.
    static func defaultName(for id: String) -> String {
        let adjective = adjectives[Int.random(in: 0..<adjectives.count)]
        let noun = nouns[Int.random(in: 0..<nouns.count)]
        return "\(adjective)_\(noun)_\(id.prefix(6))"
    }
}
