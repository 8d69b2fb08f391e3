import CNI
import Glibc
import PierState

/// Container records under `<root>/containers/<id>/`, one JSON file each, written atomically. Every
/// command that changes state holds the store's lock, so concurrent `pier` processes serialize.
///
/// Two indexes of symlinks (see `StateLayout`) let a command find one container without reading every
/// record: `names/<name>` → id, and `joined/<id>` → the namespace path of a container that joined
/// another's. `save` keeps them current under the lock; an entry is a hint, confirmed by the record it
/// leads to, so one left behind by a `pier` killed half-way is harmless. A store written before the
/// indexes existed gets them built from its records by the first `save`; until then readers scan.
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
        return try FileLock.held(at: layout.lockPath, inheritable: true)
    }

    /// Writes the record and points the indexes at it. Callers hold the lock. `durable: false` skips the
    /// sync, for a record whose loss in a power cut leaves nothing `gc` cannot find without it.
    public func save(_ record: ContainerRecord, durable: Bool = true) throws(RuntimeError) {
        try Files.makeDirectories(directory(of: record.id), mode: 0o700)
        let staleBefore = markListingStale()
        try Files.writeAtomically(
            record.stateJSON.encodedBytes + [UInt8(ascii: "\n")], to: statePath(of: record.id), mode: 0o600,
            durable: durable)
        try index(record)
        updateListing(with: record, rebuild: staleBefore)
    }

    public func load(id: String) -> ContainerRecord? {
        guard Self.isPlainName(id), let bytes = try? Files.read(statePath(of: id)),
            let value = try? JSONValue(parsing: bytes)
        else { return nil }
        return ContainerRecord(stateJSON: value)
    }

    /// Every record, oldest first; records created in the same second by name, so the order is stable.
    public func all() -> [ContainerRecord] {
        Files.list(containersDirectory).compactMap { load(id: $0) }.sorted {
            ($0.created, $0.name, $0.id) < ($1.created, $1.name, $1.id)
        }
    }

    /// A container by exact name, full ID or unambiguous ID prefix (as Docker resolves them). The name
    /// is one index lookup and IDs are directory names: no record but the one found is read.
    public func find(_ reference: String) throws(RuntimeError) -> ContainerRecord {
        if let byName = record(named: reference) { return byName }
        if let byID = load(id: reference) { return byID }
        let ids = reference.count >= 3 ? (try? FileSystem.list(containersDirectory)) ?? [] : []
        let matches = ids.filter { $0.hasPrefix(reference) }
        if matches.count > 1 { throw RuntimeError.invalidArgument("ambiguous container ID prefix \(reference)") }
        if let id = matches.first, let byPrefix = load(id: id) { return byPrefix }
        // Not found: an index that missed a name (a store an older `pier` also wrote) must not hide it.
        if hasIndexes, let byName = all().first(where: { $0.name == reference }) { return byName }
        throw RuntimeError.unknownContainer(reference)
    }

    /// The container called `name`, through the name index.
    public func record(named name: String) -> ContainerRecord? {
        guard hasIndexes else { return all().first { $0.name == name } }
        guard Self.isPlainName(name), let id = Files.readLink(layout.namesDirectory + "/" + name),
            let record = load(id: id), record.name == name
        else { return nil }
        return record
    }

    /// Containers living in the network namespace at `path` without owning it (`--net container:NAME`).
    public func joiners(of path: String) -> [ContainerRecord] {
        let candidates: [ContainerRecord]
        if hasIndexes {
            let directory = layout.joinedDirectory
            candidates = Files.list(directory).filter { Files.readLink(directory + "/" + $0) == path }.compactMap {
                load(id: $0)
            }
        } else {
            candidates = all()
        }
        return candidates.filter { !$0.ownsNetns && $0.netnsPath == path }
    }

    public func remove(id: String) {
        let record = load(id: id)
        let staleBefore = markListingStale()
        Files.removeTree(directory(of: id))
        updateListing(with: nil, removing: id, rebuild: staleBefore)
        if let record, Self.isPlainName(record.name) {
            let name = layout.namesDirectory + "/" + record.name
            if Files.readLink(name) == id { Files.remove(name) }
        }
        if Self.isPlainName(id) { Files.remove(layout.joinedDirectory + "/" + id) }
    }

    /// The name index's directory is made last when the indexes are built: its presence says both are whole.
    var hasIndexes: Bool { isDirectory(layout.namesDirectory) }

    /// Points the indexes at `record`: a readlink each when they already do.
    private func index(_ record: ContainerRecord) throws(RuntimeError) {
        guard hasIndexes else {
            try buildIndexes()
            return
        }
        try Self.point(layout.namesDirectory + "/" + record.name, at: record.id)
        let joined = layout.joinedDirectory + "/" + record.id
        if !record.ownsNetns, let path = record.netnsPath {
            try Self.point(joined, at: path)
        } else if Files.readLink(joined) != nil {
            Files.remove(joined)
        }
    }

    /// Builds both indexes from the records: the joined one in place, the name one beside its final
    /// name and renamed into place, so a reader sees either no index or a whole one.
    private func buildIndexes() throws(RuntimeError) {
        let names = layout.namesDirectory
        let building = FileSystem.siblingTemporaryPath(for: names)
        Files.removeTree(building)
        Files.removeTree(layout.joinedDirectory)
        try Files.makeDirectories(building, mode: 0o700)
        try Files.makeDirectories(layout.joinedDirectory, mode: 0o700)
        for record in all() {
            try Self.point(building + "/" + record.name, at: record.id)
            if !record.ownsNetns, let path = record.netnsPath {
                try Self.point(layout.joinedDirectory + "/" + record.id, at: path)
            }
        }
        guard rename(building, names) == 0 else { throw RuntimeError.system("rename \(building)", errno: errno) }
    }

    /// Makes `link` a symlink to `target` unless it already is one.
    private static func point(_ link: String, at target: String) throws(RuntimeError) {
        if Files.readLink(link) == target { return }
        Files.remove(link)
        guard symlink(target, link) == 0 else { throw RuntimeError.system("symlink \(link)", errno: errno) }
    }

    /// A name that stays one entry of a directory (names and IDs come from the command line).
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/")
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
