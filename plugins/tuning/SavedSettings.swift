import CNI

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
/// temporary name and renamed over, so a reader never sees half a file and concurrent plugins
/// for different attachments never touch the same file.
struct SavedSettingsStore {
    let directory: String

    func path(containerID: String, ifName: String) -> String {
        directory + "/" + containerID + "_" + ifName + ".json"
    }

    /// Nil when there is no file (or it is unreadable as JSON: nothing can be restored from it).
    func load(containerID: String, ifName: String) throws -> SavedSettings? {
        guard let bytes = try readFile(path(containerID: containerID, ifName: ifName)) else { return nil }
        guard let value = try? JSONValue(parsing: bytes) else { return nil }
        return SavedSettings(json: value)
    }

    func save(_ settings: SavedSettings) throws {
        try makeDirectory()
        let target = path(containerID: settings.containerID, ifName: settings.ifName)
        let temporary = target + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw failure("create", temporary) }
        let bytes = settings.json.encodedBytes
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                write(fd, raw.baseAddress.map { $0 + offset }, bytes.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                let error = failure("write", temporary)
                close(fd)
                unlink(temporary)
                throw error
            }
            offset += written
        }
        // fsync before rename: after a crash the file is either the old one or the whole new one.
        if fsync(fd) != 0 || close(fd) != 0 {
            let error = failure("write", temporary)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, target) == 0 else {
            let error = failure("rename", temporary)
            unlink(temporary)
            throw error
        }
    }

    func remove(containerID: String, ifName: String) throws {
        let target = path(containerID: containerID, ifName: ifName)
        if unlink(target) != 0 && errno != ENOENT { throw failure("remove", target) }
    }

    /// Every saved file, for GC.
    func all() throws -> [SavedSettings] {
        guard let stream = opendir(directory) else {
            if errno == ENOENT { return [] }
            throw failure("list", directory)
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".json") { names.append(name) }
        }
        var saved: [SavedSettings] = []
        for name in names.sorted() {
            guard let bytes = try readFile(directory + "/" + name), let value = try? JSONValue(parsing: bytes),
                let settings = SavedSettings(json: value)
            else { continue }
            saved.append(settings)
        }
        return saved
    }

    private func makeDirectory() throws {
        var prefix = ""
        for component in directory.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { throw failure("create directory", prefix) }
        }
    }

    private func readFile(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw failure("open", path)
        }
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return data }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("read", path)
            }
            data.append(contentsOf: buffer[0..<count])
        }
    }

    private func failure(_ operation: String, _ path: String) -> CNIError {
        CNIError(.internalError, "tuning: cannot \(operation) \(path): \(String(cString: strerror(errno)))")
    }
}
