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

    /// Whether the process still runs, without reading `/proc`: the pid exists and, for a detached
    /// container, still leads its own session as the container's monitor does (a recycled pid almost
    /// never does). Commands that signal the process check its start time instead (`isRunning`).
    public var isRunning: Bool {
        guard status == .started, let pid, pid > 0 else { return false }
        guard Glibc.kill(pid, 0) == 0 || errno == EPERM else { return false }
        if detached { return getsid(pid) == pid }
        guard let pidStartTime else { return false }
        return ProcessState.isAlive(pid: pid, startTime: pidStartTime)
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
        guard text.contains(where: { $0 == "\\" || $0 == "\t" || $0 == "\n" || $0 == "\u{1F}" }) else { return text }
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

/// `<root>/listing`: a header naming the boot it was written in, then one `ContainerSummary` line per
/// container, oldest first. Every change to a record changes its line under the store lock, without
/// a sync: the records are the truth and the listing is rebuilt from them when it cannot be trusted —
/// when it was written before the last boot (a power loss may have lost its last changes), or when
/// `listing.stale` was left behind by a `pier` that died between changing a record and its line.
extension StateStore {
    static let listingMagic = "pier-listing 1 "

    /// Every container's summary, oldest first: one file read, unless the listing must be rebuilt.
    public func summaries() -> [ContainerSummary] {
        if access(layout.listingStalePath, F_OK) != 0, let listed = readListing() { return listed }
        // Stale or missing: rebuild it when no other `pier` is changing the store, else read the records.
        guard let lock = FileLock(tryingPath: layout.lockPath) else {
            return readListing() ?? all().map(ContainerSummary.init)
        }
        defer { lock.release() }
        let records = all()
        try? writeListing(records.map(ContainerSummary.init))
        return records.map(ContainerSummary.init)
    }

    /// Marks the listing stale before a record changes; returns whether a dead `pier` had left it so.
    func markListingStale() -> Bool {
        let path = layout.listingStalePath
        if access(path, F_OK) == 0 { return true }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        return false
    }

    /// Puts `record`'s line in the listing (or drops the line of `removing`), then clears the stale mark.
    /// `rebuild` (a dead `pier`'s stale mark, or no listing yet) writes it afresh from the records. The
    /// other lines are copied as bytes, unparsed: every record change of every command pays for this.
    func updateListing(with record: ContainerRecord?, removing id: String? = nil, rebuild: Bool) {
        let newline = UInt8(ascii: "\n")
        var lines: [ArraySlice<UInt8>]
        if !rebuild, let bytes = try? Files.read(layout.listingPath) {
            lines = bytes[...].split(separator: newline)
        } else {
            lines = []
        }
        guard let header = lines.first, header.elementsEqual(listingHeader.utf8) else {
            _ = try? writeListing(all().map(ContainerSummary.init))
            Files.remove(layout.listingStalePath)
            return
        }
        let key = Array(((record?.id ?? id ?? "") + "\t").utf8)
        let replacement = record.map { Array(ContainerSummary($0).line.utf8)[...] }
        if let index = lines.indices.dropFirst().first(where: { lines[$0].starts(with: key) }) {
            if let replacement { lines[index] = replacement } else { lines.remove(at: index) }
        } else if let replacement {
            lines.append(replacement)
        }
        var output: [UInt8] = []
        output.reserveCapacity(lines.reduce(0) { $0 + $1.count + 1 })
        for line in lines {
            output += line
            output.append(newline)
        }
        guard (try? Files.writeAtomically(output, to: layout.listingPath, mode: 0o600, durable: false)) != nil else {
            return
        }
        Files.remove(layout.listingStalePath)
    }

    /// The listing's first line: format and boot.
    var listingHeader: String { Self.listingMagic + Self.bootID() }

    private func writeListing(_ summaries: [ContainerSummary]) throws(RuntimeError) {
        var text = listingHeader + "\n"
        for summary in summaries { text += summary.line + "\n" }
        try Files.writeAtomically(Array(text.utf8), to: layout.listingPath, mode: 0o600, durable: false)
    }

    /// The listing's summaries, nil when there is none or it was written before the last boot.
    private func readListing() -> [ContainerSummary]? {
        guard let bytes = try? Files.read(layout.listingPath) else { return nil }
        var lines = bytes[...].split(separator: UInt8(ascii: "\n"))
        guard let header = lines.first, header.elementsEqual(listingHeader.utf8) else {
            return nil
        }
        lines.removeFirst()
        var summaries: [ContainerSummary] = []
        summaries.reserveCapacity(lines.count)
        for line in lines {
            guard let summary = ContainerSummary(line: line) else { return nil }
            summaries.append(summary)
        }
        return summaries
    }

    /// This boot's random ID: a listing from another boot may lack changes a power loss took.
    static func bootID() -> String {
        guard let bytes = try? Files.read("/proc/sys/kernel/random/boot_id") else { return "unknown" }
        return String(decoding: bytes, as: UTF8.self).trimmingSuffixNewlines()
    }
}
