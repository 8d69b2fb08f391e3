import CPierShim
import Glibc
import PierState

/// What `ps` shows of one container, kept for every container in one file (`<root>/listing`) so
/// listing them all is one read: with a thousand containers, opening a thousand records (and a
/// thousand `/proc/<pid>/stat`) cost more than everything else `ps` does.
public struct ContainerSummary: Sendable, Equatable {
    public var id: String
    public var name: String
    public var status: ContainerRecord.Status
    public var created: String
    public var pid: Int32?
    public var pidStartTime: UInt64?
    public var detached: Bool
    public var exitCode: Int32?
    /// `ContainerRecord.networkDescription`.
    public var network: String
    public var addresses: [String]
    public var command: [String]

    public init(_ record: ContainerRecord) {
        id = record.id
        name = record.name
        status = record.status
        created = record.created
        pid = record.pid
        pidStartTime = record.pidStartTime
        detached = record.detached
        exitCode = record.exitCode
        network = record.networkDescription
        addresses = record.attachments.flatMap(\.addresses)
        command = record.command
    }

    /// Whether the process still runs, without parsing `/proc/<pid>/stat` (two syscalls, no path
    /// lookup): the pid still leads its own session, as a detached container's monitor does (so it
    /// exists, and a recycled pid almost never does), and it is no zombie: a zombie has no memory left,
    /// so reading one byte of it fails with ESRCH where a live process fails with EFAULT (or EPERM
    /// where ptrace is denied: then nothing is known and it counts as running). Commands that signal
    /// the process compare its start time instead (`ContainerRecord.isRunning`).
    public var isRunning: Bool {
        guard status == .started, let pid, pid > 0 else { return false }
        guard detached else {
            guard let pidStartTime else { return false }
            return ProcessState.isAlive(pid: pid, startTime: pidStartTime)
        }
        guard getsid(pid) == pid else { return false }
        return pier_probe_process_memory(pid) == 0 || errno != ESRCH
    }

    /// One line: tab-separated fields, the command's words separated by 0x1F, each field escaped.
    var line: String {
        let fields = [
            id, name, status.rawValue, created, pid.map { String($0) } ?? "", pidStartTime.map { String($0) } ?? "",
            detached ? "1" : "0", exitCode.map { String($0) } ?? "", network, addresses.joined(separator: ","),
        ].map(Self.escape)
        return (fields + [command.map(Self.escape).joined(separator: "\u{1F}")]).joined(separator: "\t")
    }

    /// Parses one line's bytes (byte-wise: a thousand lines through `Character` splitting cost more than
    /// the file read).
    init?(line: ArraySlice<UInt8>) {
        let fields = line.split(separator: Self.tab, omittingEmptySubsequences: false)
        guard fields.count == 11, let status = ContainerRecord.Status(rawValue: Self.unescape(fields[2])) else {
            return nil
        }
        id = Self.unescape(fields[0])
        name = Self.unescape(fields[1])
        self.status = status
        created = Self.unescape(fields[3])
        pid = Self.number(fields[4])
        pidStartTime = Self.number(fields[5])
        detached = fields[6].first == UInt8(ascii: "1")
        exitCode = Self.number(fields[7])
        network = Self.unescape(fields[8])
        addresses = fields[9].isEmpty ? [] : Self.unescape(fields[9]).split(separator: ",").map(String.init)
        command =
            fields[10].isEmpty
            ? [] : fields[10].split(separator: Self.unitSeparator, omittingEmptySubsequences: false).map(Self.unescape)
    }

    static let tab = UInt8(ascii: "\t")
    static let unitSeparator: UInt8 = 0x1F

    static func number<Number: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>) -> Number? {
        bytes.isEmpty ? nil : Number(String(decoding: bytes, as: UTF8.self))
    }

    static func escape(_ text: String) -> String {
        // Bytes, not characters: walking grapheme clusters made compacting a big listing slow.
        guard text.utf8.contains(where: { $0 == 0x5C || $0 == 0x09 || $0 == 0x0A || $0 == 0x1F }) else { return text }
        var escaped = ""
        for character in text {
            switch character {
            case "\\": escaped += "\\\\"
            case "\t": escaped += "\\t"
            case "\n": escaped += "\\n"
            case "\u{1F}": escaped += "\\u"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    static func unescape(_ bytes: ArraySlice<UInt8>) -> String {
        guard bytes.contains(UInt8(ascii: "\\")) else { return String(decoding: bytes, as: UTF8.self) }
        var plain: [UInt8] = []
        var escaping = false
        for byte in bytes {
            if escaping {
                switch byte {
                case UInt8(ascii: "t"): plain.append(tab)
                case UInt8(ascii: "n"): plain.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "u"): plain.append(unitSeparator)
                default: plain.append(byte)
                }
                escaping = false
            } else if byte == UInt8(ascii: "\\") {
                escaping = true
            } else {
                plain.append(byte)
            }
        }
        return String(decoding: plain, as: UTF8.self)
    }
}

/// `<root>/listing`: a header naming the boot it was written in, then `ContainerSummary` lines, oldest
/// container first. It is a journal: a change to a record appends that container's line under the store
/// lock (a removal appends `<id>\t-`), and the last line of an ID wins, so a change costs one append
/// however many containers there are. When appends have doubled the file since it was last compacted, it
/// is rewritten with one line per container. Nothing is synced: the records are the truth, and the
/// listing is rebuilt from them when it cannot be trusted — written before the last boot (a power loss
/// may have lost its last lines), unreadable, or marked by `listing.stale`, which a `pier` that died
/// between changing a record and appending its line leaves behind.
extension StateStore {
    static let listingMagic = "pier-listing 2"

    /// Every container's summary, oldest first: one file read, unless the listing must be rebuilt.
    public func summaries() -> [ContainerSummary] {
        if access(layout.listingStalePath, F_OK) != 0, let listed = readListing() { return listed }
        // Stale or missing: rebuild it when no other `pier` is changing the store, else read the records.
        guard let lock = FileLock(tryingPath: layout.lockPath) else {
            return readListing() ?? all().map(ContainerSummary.init)
        }
        defer { lock.release() }
        let summaries = all().map(ContainerSummary.init)
        if (try? writeListing(summaries)) != nil { Files.remove(layout.listingStalePath) }
        return summaries
    }

    /// Marks the listing stale before a record changes; returns whether a dead `pier` had left it so.
    func markListingStale() -> Bool {
        let path = layout.listingStalePath
        if access(path, F_OK) == 0 { return true }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        return false
    }

    /// Appends `record`'s line to the listing (or the removal of `removing`), then clears the stale mark.
    /// `rebuild` (a dead `pier`'s stale mark) writes it afresh from the records, as does a listing that
    /// is missing or not this boot's.
    func updateListing(with record: ContainerRecord?, removing id: String? = nil, rebuild: Bool) {
        let line = record.map { ContainerSummary($0).line } ?? (id ?? "") + "\t-"
        let written: Bool
        if rebuild {
            written = (try? writeListing(all().map(ContainerSummary.init))) != nil
        } else if let appended = append(line) {
            written = appended
        } else if var lines = currentLines() {
            // Compaction: the last line of each container, as bytes (nothing parsed), this change applied.
            let key = Array((record?.id ?? id ?? "").utf8)[...]
            let replacement = (id: key, line: Array(line.utf8)[...])
            if let index = lines.firstIndex(where: { $0.id == key }) {
                if record != nil { lines[index] = replacement } else { lines.remove(at: index) }
            } else if record != nil {
                lines.append(replacement)
            }
            written = (try? writeListing(lines: lines.map(\.line))) != nil
        } else {
            written = (try? writeListing(all().map(ContainerSummary.init))) != nil
        }
        if written { Files.remove(layout.listingStalePath) }
    }

    /// Appends one line to this boot's listing: true when done, false when it failed, nil when the file
    /// is missing, from another boot, or due for compaction.
    private func append(_ line: String) -> Bool? {
        let fd = open(layout.listingPath, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 256)
        let count = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0, let newline = header[0..<count].firstIndex(of: UInt8(ascii: "\n")),
            let compacted = Self.compactedSize(header: header[..<newline])
        else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let bytes = Array((line + "\n").utf8)
        guard Int(info.st_size) + bytes.count <= 2 * compacted + 64 * 1024 else { return nil }
        return bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count
    }

    /// The size the listing's lines had when it was last compacted, from its header; nil when the header
    /// is not this boot's.
    private static func compactedSize(header: ArraySlice<UInt8>) -> Int? {
        let prefix = Array(headerPrefix.utf8)
        guard header.starts(with: prefix) else { return nil }
        return Int(String(decoding: header.dropFirst(prefix.count), as: UTF8.self))
    }

    /// The header up to the compacted size: format and boot.
    private static var headerPrefix: String { listingMagic + " " + bootID() + " " }

    /// Writes one line per container, compacting the journal.
    private func writeListing(_ summaries: [ContainerSummary]) throws(RuntimeError) {
        try writeListing(lines: summaries.map { Array($0.line.utf8)[...] })
    }

    private func writeListing(lines: [ArraySlice<UInt8>]) throws(RuntimeError) {
        var body: [UInt8] = []
        body.reserveCapacity(lines.reduce(0) { $0 + $1.count + 1 })
        for line in lines {
            body += line
            body.append(UInt8(ascii: "\n"))
        }
        let bytes = Array((Self.headerPrefix + String(body.count) + "\n").utf8) + body
        try Files.writeAtomically(bytes, to: layout.listingPath, mode: 0o600, durable: false)
    }

    /// The listing's summaries (the last line of each ID, in the order IDs first appear), nil when there
    /// is none, it is another boot's, or a line does not parse.
    private func readListing() -> [ContainerSummary]? {
        guard let lines = currentLines() else { return nil }
        var summaries: [ContainerSummary] = []
        summaries.reserveCapacity(lines.count)
        for (_, line) in lines {
            guard let summary = ContainerSummary(line: line) else { return nil }
            summaries.append(summary)
        }
        return summaries
    }

    /// The last line of each ID still listed, in the order IDs first appear, unparsed; nil when there is
    /// no listing, it is another boot's, or a line has no ID.
    private func currentLines() -> [(id: ArraySlice<UInt8>, line: ArraySlice<UInt8>)]? {
        guard let bytes = try? Files.read(layout.listingPath) else { return nil }
        let lines = bytes[...].split(separator: UInt8(ascii: "\n"))
        guard let header = lines.first, Self.compactedSize(header: header) != nil else { return nil }
        var order: [ArraySlice<UInt8>] = []
        var latest: [ArraySlice<UInt8>: ArraySlice<UInt8>] = [:]
        for line in lines.dropFirst() {
            guard let tab = line.firstIndex(of: ContainerSummary.tab) else { return nil }
            let id = line[..<tab]
            if line[line.index(after: tab)...].elementsEqual("-".utf8) {
                latest[id] = nil
                continue
            }
            if latest.updateValue(line, forKey: id) == nil { order.append(id) }
        }
        var current: [(id: ArraySlice<UInt8>, line: ArraySlice<UInt8>)] = []
        current.reserveCapacity(order.count)
        for id in order {
            guard let line = latest.removeValue(forKey: id) else { continue }
            current.append((id, line))
        }
        return current
    }

    /// This boot's random ID: a listing from another boot may lack changes a power loss took.
    static func bootID() -> String {
        guard let bytes = try? Files.read("/proc/sys/kernel/random/boot_id") else { return "unknown" }
        return String(decoding: bytes, as: UTF8.self).trimmingSuffixNewlines()
    }
}
