import CNI
import PierState

#if canImport(Glibc)
    import Glibc
#endif

/// The values an ADD found before it changed them, kept in one file per attachment so DEL can
/// put them back: `<dataDir>/<containerID>_<ifName>.json`, the reference plugin's name and
/// keys (`mac`, `promisc`, `mtu`, `allmulti`, `txQLen`), so either plugin restores what the
/// other saved. Pier adds `sysctl` (original values by /proc/sys path, which the reference
/// never restores) and the attachment, so GC can tell whose a file is.
struct SavedSettings: Equatable {
    var network = ""
    var containerID = ""
    var ifName = ""
    var mac: String?
    var promiscuous: Bool?
    var mtu: UInt32?
    var allMulticast: Bool?
    var transmitQueueLength: UInt32?
    /// Original values, in the order they were changed.
    var sysctls: [(path: String, value: String)] = []

    var isEmpty: Bool {
        mac == nil && promiscuous == nil && mtu == nil && allMulticast == nil && transmitQueueLength == nil
            && sysctls.isEmpty
    }

    static func == (lhs: SavedSettings, rhs: SavedSettings) -> Bool {
        lhs.json == rhs.json
    }

    /// Keeps every value already saved: a repeated ADD must not record its own changes as the
    /// originals.
    mutating func keepingEarlier(_ earlier: SavedSettings) {
        mac = earlier.mac ?? mac
        promiscuous = earlier.promiscuous ?? promiscuous
        mtu = earlier.mtu ?? mtu
        allMulticast = earlier.allMulticast ?? allMulticast
        transmitQueueLength = earlier.transmitQueueLength ?? transmitQueueLength
        let fresh = sysctls.filter { entry in !earlier.sysctls.contains { $0.path == entry.path } }
        sysctls = earlier.sysctls + fresh
    }

    var json: JSONValue {
        var object = JSONObject()
        if let mac { object["mac"] = .string(mac) }
        if let promiscuous { object["promisc"] = .bool(promiscuous) }
        if let mtu { object["mtu"] = .integer(mtu) }
        if let allMulticast { object["allmulti"] = .bool(allMulticast) }
        if let transmitQueueLength { object["txQLen"] = .integer(transmitQueueLength) }
        if !sysctls.isEmpty { object["sysctl"] = .object(JSONObject(sysctls.map { ($0.path, .string($0.value)) })) }
        object["network"] = .string(network)
        object["containerID"] = .string(containerID)
        object["ifName"] = .string(ifName)
        return .object(object)
    }

    init() {}

    /// Lenient, like the reference's reader: a key of the wrong type is skipped, not fatal.
    init?(json value: JSONValue) {
        guard let object = value.objectValue else { return nil }
        network = object["network"]?.stringValue ?? ""
        containerID = object["containerID"]?.stringValue ?? ""
        ifName = object["ifName"]?.stringValue ?? ""
        mac = object["mac"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        promiscuous = object["promisc"]?.boolValue
        // The reference writes 0 for "not changed".
        mtu = object["mtu"]?.intValue.flatMap { $0 > 0 ? UInt32(exactly: $0) : nil }
        allMulticast = object["allmulti"]?.boolValue
        transmitQueueLength = object["txQLen"]?.intValue.flatMap { UInt32(exactly: $0) }
        for (path, entry) in object["sysctl"]?.objectValue ?? JSONObject() {
            if let text = entry.stringValue { sysctls.append((path, text)) }
        }
    }
}

/// The directory of saved settings. Each attachment has its own file, written whole to a
/// temporary name and renamed over (`FileSystem.replace`), so a reader never sees half a file
/// and concurrent plugins for different attachments never touch the same file.
struct SavedSettingsStore {
    let directory: String

    func name(containerID: String, ifName: String) -> String {
        containerID + "_" + ifName + ".json"
    }

    /// Nil when there is no file (or it is unreadable as JSON: nothing can be restored from it).
    func load(containerID: String, ifName: String) throws -> SavedSettings? {
        try load(name(containerID: containerID, ifName: ifName))
    }

    func save(_ settings: SavedSettings) throws {
        try storing("save settings in") { () throws(FileSystemError) in
            // Root only: the directory names containers, the files their interfaces' settings.
            try FileSystem.makeDirectories(parent)
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw FileSystemError("mkdir", directory, errno: errno)
            }
            try FileSystem.replace(
                directory: directory, name: name(containerID: settings.containerID, ifName: settings.ifName),
                contents: settings.json.encodedBytes, mode: 0o600)
        }
    }

    func remove(containerID: String, ifName: String) throws {
        try storing("remove settings from") { () throws(FileSystemError) in
            try FileSystem.remove(directory + "/" + name(containerID: containerID, ifName: ifName))
        }
    }

    /// Every saved file, for GC.
    func all() throws -> [SavedSettings] {
        let names = try storing("list") { () throws(FileSystemError) in try FileSystem.list(directory) } ?? []
        var saved: [SavedSettings] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            if let settings = try load(name) { saved.append(settings) }
        }
        return saved
    }

    private var parent: String {
        String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)])
    }

    private func load(_ name: String) throws -> SavedSettings? {
        guard
            let bytes = try storing(
                "read", { () throws(FileSystemError) in try FileSystem.read(directory + "/" + name) }),
            let value = try? JSONValue(parsing: bytes)
        else { return nil }
        return SavedSettings(json: value)
    }

    @discardableResult
    private func storing<T>(_ what: String, _ body: () throws(FileSystemError) -> T) throws(CNIError) -> T {
        do {
            return try body()
        } catch {
            throw CNIError(.internalError, "tuning: cannot \(what) \(directory): \(error)")
        }
    }
}
