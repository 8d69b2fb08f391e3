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
    public var monitorRobustList: UInt64?
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
        monitorRobustList = record.monitorRobustList
        detached = record.detached
        exitCode = record.exitCode
        network = record.networkDescription
        addresses = record.attachments.flatMap(\.addresses)
        command = record.command
    }

    /// Whether the process still runs (`ListedContainer.isRunning`).
    public var isRunning: Bool {
        ListedContainer.isRunning(
            status: status, pid: pid, pidStartTime: pidStartTime, monitorRobustList: monitorRobustList,
            detached: detached)
    }

    /// One line: tab-separated fields, the command's words separated by 0x1F, each field escaped.
    var line: String {
        let fields = [
            id, name, status.rawValue, created, pid.map { String($0) } ?? "", pidStartTime.map { String($0) } ?? "",
            monitorRobustList.map { String($0) } ?? "", detached ? "1" : "0", exitCode.map { String($0) } ?? "",
            network, addresses.joined(separator: ","),
        ].map(Self.escape)
        return (fields + [command.map(Self.escape).joined(separator: "\u{1F}")]).joined(separator: "\t")
    }

    /// Parses one line's bytes.
    init?(line: ArraySlice<UInt8>) {
        guard let summary = line.withUnsafeBufferPointer({ Self(parsing: $0) }) else { return nil }
        self = summary
    }

    /// Parses one line in place (`ListedContainer`), its text fields unescaped into strings.
    init?(parsing line: UnsafeBufferPointer<UInt8>) {
        guard let listed = ListedContainer(parsing: line) else { return nil }
        self.init(listed)
    }

    public init(_ listed: ListedContainer) {
        id = listed.id.string
        name = listed.name.string
        status = listed.status
        created = listed.created.string
        pid = listed.pid
        pidStartTime = listed.pidStartTime
        monitorRobustList = listed.monitorRobustList
        detached = listed.detached
        exitCode = listed.exitCode
        network = listed.network.string
        addresses = Self.pieces(listed.addresses.escaped, separator: UInt8(ascii: ","), keepingEmpty: false)
        command = Self.pieces(listed.command.escaped, separator: Self.unitSeparator, keepingEmpty: true)
    }

    static let tab = UInt8(ascii: "\t")
    static let unitSeparator: UInt8 = 0x1F

    /// A decimal number (an optional `-`, then digits); nil when empty, malformed or out of range.
    static func number<Number: FixedWidthInteger, Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Number? {
        var digits = bytes[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard !digits.isEmpty else { return nil }
        var value: Number = 0
        for byte in digits {
            let digit = byte &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            let (tens, overflowTens) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow) =
                negative
                ? tens.subtractingReportingOverflow(Number(digit)) : tens.addingReportingOverflow(Number(digit))
            guard !overflowTens, !overflow else { return nil }
            value = next
        }
        return value
    }

    /// The escaped pieces of a field joined by `separator` (which escaping never produces), unescaped.
    static func pieces(_ field: UnsafeBufferPointer<UInt8>, separator: UInt8, keepingEmpty: Bool) -> [String] {
        guard !field.isEmpty else { return [] }
        var pieces: [String] = []
        pieces.reserveCapacity(field.reduce(1) { $0 + ($1 == separator ? 1 : 0) })
        var start = 0
        while true {
            let end = ListingFields.index(of: separator, in: field, from: start) ?? field.count
            if keepingEmpty || end > start {
                pieces.append(unescape(UnsafeBufferPointer(rebasing: field[start..<end])))
            }
            guard end < field.count else { return pieces }
            start = end + 1
        }
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

    /// The byte an escape `\<byte>` stands for.
    static func unescaped(_ byte: UInt8) -> UInt8 {
        switch byte {
        case UInt8(ascii: "t"): tab
        case UInt8(ascii: "n"): UInt8(ascii: "\n")
        case UInt8(ascii: "u"): unitSeparator
        default: byte
        }
    }

    static func unescape(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        guard ListingFields.index(of: UInt8(ascii: "\\"), in: bytes) != nil else {
            return String(decoding: bytes, as: UTF8.self)
        }
        var plain: [UInt8] = []
        ListedText(escaped: bytes).append(to: &plain)
        return String(decoding: plain, as: UTF8.self)
    }
}

/// One listing line read in place, for `ps`: numbers and status parsed, text fields left as escaped
/// bytes until asked for, so listing a thousand containers makes no string per field. Valid only while
/// the listing's bytes are (inside `StateStore.withListedContainers`).
public struct ListedContainer {
    public let id: ListedText
    public let name: ListedText
    public let status: ContainerRecord.Status
    public let created: ListedText
    public let pid: Int32?
    public let pidStartTime: UInt64?
    public let monitorRobustList: UInt64?
    public let detached: Bool
    public let exitCode: Int32?
    /// `ContainerRecord.networkDescription`.
    public let network: ListedText
    /// The addresses joined by commas.
    public let addresses: ListedText
    /// The command's words joined by 0x1F (`append(to:joiningPiecesWith:)` writes them joined by spaces).
    public let command: ListedText

    /// Parses one line: one pass over its bytes, numbers read digit by digit.
    init?(parsing line: UnsafeBufferPointer<UInt8>) {
        var fields = ListingFields(line)
        guard let id = fields.next(), let name = fields.next(), let status = fields.next(),
            let status = Self.status(status), let created = fields.next(),
            let pid = fields.next(), let pidStartTime = fields.next(), let monitorRobustList = fields.next(),
            let detached = fields.next(),
            let exitCode = fields.next(), let network = fields.next(), let addresses = fields.next(),
            let command = fields.next(), fields.next() == nil
        else { return nil }
        // Escapes are rare: one search of the line spares one per field.
        let escapes = ListingFields.index(of: UInt8(ascii: "\\"), in: line) != nil
        self.id = ListedText(escaped: id, escapes: escapes)
        self.name = ListedText(escaped: name, escapes: escapes)
        self.status = status
        self.created = ListedText(escaped: created, escapes: escapes)
        self.pid = ContainerSummary.number(pid)
        self.pidStartTime = ContainerSummary.number(pidStartTime)
        self.monitorRobustList = ContainerSummary.number(monitorRobustList)
        self.detached = detached.first == UInt8(ascii: "1")
        self.exitCode = ContainerSummary.number(exitCode)
        self.network = ListedText(escaped: network, escapes: escapes)
        self.addresses = ListedText(escaped: addresses, escapes: escapes)
        self.command = ListedText(escaped: command, escapes: escapes)
    }

    /// A status from its (never escaped) name, compared as bytes.
    private static func status(_ bytes: UnsafeBufferPointer<UInt8>) -> ContainerRecord.Status? {
        let statuses: [ContainerRecord.Status] = [.started, .created, .creating, .removing]
        return statuses.first { $0.rawValue.utf8.elementsEqual(bytes) }
    }

    /// Whether the process still runs (`isRunning(status:pid:...)`).
    public var isRunning: Bool {
        Self.isRunning(
            status: status, pid: pid, pidStartTime: pidStartTime, monitorRobustList: monitorRobustList,
            detached: detached)
    }

    /// Whether the process still runs, without parsing `/proc/<pid>/stat` (two syscalls, no path
    /// lookup): the pid still leads its own session, as a detached container's monitor does (so it
    /// exists, and a recycled pid almost never does), and it is no zombie. A live `pier` monitor has a
    /// robust futex list (glibc registers one per thread) and the kernel clears it at exit, so one
    /// `get_robust_list` settles that; only a process without one (a zombie, or a libc that registers
    /// none) gets the dearer probe: a zombie has no memory left, so reading one byte of it fails with
    /// ESRCH where a live process fails with EFAULT (or EPERM where ptrace is denied: then nothing is
    /// known and it counts as running). Commands that signal the process compare its start time
    /// instead (`ContainerRecord.isRunning`).
    static func isRunning(
        status: ContainerRecord.Status, pid: Int32?, pidStartTime: UInt64?, monitorRobustList: UInt64?,
        detached: Bool
    ) -> Bool {
        guard status == .started, let pid, pid > 0 else { return false }
        guard detached else {
            guard let pidStartTime else { return false }
            return ProcessState.isAlive(pid: pid, startTime: pidStartTime)
        }
        // One syscall where the monitor's robust list was recorded (a monitor forked from `pier`).
        if let monitorRobustList { return pier_robust_list_head(pid) == monitorRobustList }
        guard getsid(pid) == pid else { return false }
        if pier_robust_list_head(pid) != 0 { return true }
        return pier_probe_process_memory(pid) == 0 || errno != ESRCH
    }
}

/// A listing field as it is stored, escaped (`ContainerSummary.escape`).
public struct ListedText {
    let escaped: UnsafeBufferPointer<UInt8>
    /// Whether the text may hold escapes (false: it is as stored).
    var escapes = true

    public var string: String { ContainerSummary.unescape(escaped) }

    /// Appends the text unescaped, with each 0x1F that joins pieces (a command's words) written as
    /// `separator`; an escaped 0x1F inside a piece stays one.
    public func append(to bytes: inout [UInt8], joiningPiecesWith separator: UInt8 = 0x1F) {
        // Most fields have neither: one copy.
        let plain =
            (!escapes || ListingFields.index(of: UInt8(ascii: "\\"), in: escaped) == nil)
            && (separator == ContainerSummary.unitSeparator
                || ListingFields.index(of: ContainerSummary.unitSeparator, in: escaped) == nil)
        guard !plain else {
            bytes.append(contentsOf: escaped)
            return
        }
        var escaping = false
        for byte in escaped {
            if escaping {
                bytes.append(ContainerSummary.unescaped(byte))
                escaping = false
            } else if byte == UInt8(ascii: "\\") {
                escaping = true
            } else {
                bytes.append(byte == ContainerSummary.unitSeparator ? separator : byte)
            }
        }
    }
}

/// A listing line's tab-separated fields, front to back, in place.
struct ListingFields {
    private let line: UnsafeBufferPointer<UInt8>
    private var start: Int? = 0

    init(_ line: UnsafeBufferPointer<UInt8>) { self.line = line }

    /// The next field; nil after the last.
    mutating func next() -> UnsafeBufferPointer<UInt8>? {
        guard let from = start else { return nil }
        let end = Self.index(of: ContainerSummary.tab, in: line, from: from) ?? line.count
        start = end < line.count ? end + 1 : nil
        return UnsafeBufferPointer(rebasing: line[from..<end])
    }

    /// The offset of the first `byte` at or after `start` (memchr: byte by byte, a thousand lines cost
    /// more to scan than to read).
    static func index(of byte: UInt8, in bytes: UnsafeBufferPointer<UInt8>, from start: Int = 0) -> Int? {
        guard let base = bytes.baseAddress, start < bytes.count,
            let found = memchr(base + start, Int32(byte), bytes.count - start)
        else { return nil }
        return UnsafeRawPointer(found) - UnsafeRawPointer(base)
    }
}

/// `<root>/listing`: a header naming the boot it was written in, then `ContainerSummary` lines, oldest
/// container first. It is a journal: a change to a record appends that container's line under the store
/// lock (a removal appends `<id>\t-`), and the last line of an ID wins, so a change costs one append
/// however many containers there are. When appends have grown the file by a quarter (and 16 KiB) since it
/// was last compacted, it
/// is rewritten with one line per container. Nothing is synced: the records are the truth, and the
/// listing is rebuilt from them when it cannot be trusted — written before the last boot (a power loss
/// may have lost its last lines), unreadable, or marked pending (`listing.pending` holds `1`), which a
/// `pier` that died between changing a record and appending its line leaves behind. The mark is a byte
/// rewritten in place, not a file made and removed per change: on an ext4 without a journal every new
/// inode is found by scanning past the recently deleted ones, and a `run` changed its record four times.
extension StateStore {
    /// 3: the monitor's robust list after the start time (a listing of another format is rebuilt).
    static let listingMagic = "pier-listing 3"

    /// Every container's summary, oldest first: one file read, unless the listing must be rebuilt.
    public func summaries() -> [ContainerSummary] {
        withListedContainers { $0.map(ContainerSummary.init) }
    }

    /// Every container's listing line, oldest first, read in place for `body`: one file read, unless the
    /// listing must be rebuilt (then the lines are made from the records).
    public func withListedContainers<Result>(_ body: ([ListedContainer]) -> Result) -> Result {
        if !isListingPending(), let result = parsingListing(body) { return result }
        // Stale or missing: rebuild it when no other `pier` is changing the store, else read it anyway
        // (that `pier` marked it pending for its own change) or, failing that, the records.
        let summaries: [ContainerSummary]
        if let lock = FileLock.ifFree(at: layout.lockPath) {
            defer { lock.release() }
            summaries = all().map(ContainerSummary.init)
            if (try? writeListing(summaries)) != nil { clearListingPending(rebuilt: true) }
        } else {
            if let result = parsingListing(body) { return result }
            summaries = all().map(ContainerSummary.init)
        }
        let lines = summaries.map { Array($0.line.utf8) + [UInt8(ascii: "\n")] }
        var start = 0
        let ranges = lines.map { line in
            defer { start += line.count }
            return start..<start + line.count - 1
        }
        // Lines made from records always parse.
        return Self.parsing(Array(lines.joined()), lines: ranges, body) ?? body([])
    }

    /// `body` over the listing file's current lines; nil when there is none, it is another boot's, or a
    /// line does not parse.
    private func parsingListing<Result>(_ body: ([ListedContainer]) -> Result) -> Result? {
        guard let (bytes, lines) = currentLines() else { return nil }
        return Self.parsing(bytes, lines: lines, body)
    }

    /// `body` over `lines` of `bytes` parsed; nil when one does not parse.
    private static func parsing<Result>(
        _ bytes: [UInt8], lines: [Range<Int>], _ body: ([ListedContainer]) -> Result
    ) -> Result? {
        bytes.withUnsafeBufferPointer { buffer in
            var listed: [ListedContainer] = []
            listed.reserveCapacity(lines.count)
            for line in lines {
                guard let container = ListedContainer(parsing: UnsafeBufferPointer(rebasing: buffer[line])) else {
                    return nil
                }
                listed.append(container)
            }
            return body(listed)
        }
    }

    /// Marks the listing pending before a record changes; returns whether a dead `pier` had left it so.
    /// One open of the mark for reading it and setting it.
    func markListingStale() -> Bool {
        let fd = open(layout.listingPendingPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return isListingPending() }
        defer { close(fd) }
        let wasPending = Self.marksPending(fd) || hasEarlierVersionsMark
        var mark = UInt8(ascii: "1")
        _ = pwrite(fd, &mark, 1, 0)
        return wasPending
    }

    /// Whether a change to the records may be missing from the listing.
    private func isListingPending() -> Bool {
        let fd = open(layout.listingPendingPath, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            if Self.marksPending(fd) { return true }
        }
        return hasEarlierVersionsMark
    }

    /// The mark file (open in `fd`) holds `1`.
    private static func marksPending(_ fd: Int32) -> Bool {
        var mark: UInt8 = 0
        return pread(fd, &mark, 1, 0) == 1 && mark == UInt8(ascii: "1")
    }

    /// `listing.stale`, the mark as versions before `listing.pending` made it.
    private var hasEarlierVersionsMark: Bool { access(layout.listingStalePath, F_OK) == 0 }

    /// Clears the mark once the listing has the change; `rebuilt` also drops an earlier version's mark,
    /// which only a listing rebuilt from the records answers.
    private func clearListingPending(rebuilt: Bool) {
        writePendingMark(UInt8(ascii: "0"))
        if rebuilt { Files.remove(layout.listingStalePath) }
    }

    private func writePendingMark(_ mark: UInt8) {
        var byte = mark
        let fd = open(layout.listingPendingPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        _ = pwrite(fd, &byte, 1, 0)
        close(fd)
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
        } else if let (bytes, ranges) = currentLines() {
            // Compaction: the last line of each container, as bytes (nothing parsed), this change applied.
            var lines = ranges.map { bytes[$0] }
            let key = Array(((record?.id ?? id ?? "") + "\t").utf8)
            let replacement = Array(line.utf8)[...]
            if let index = lines.firstIndex(where: { $0.starts(with: key) }) {
                if record != nil { lines[index] = replacement } else { lines.remove(at: index) }
            } else if record != nil {
                lines.append(replacement)
            }
            written = (try? writeListing(lines: lines)) != nil
        } else {
            written = (try? writeListing(all().map(ContainerSummary.init))) != nil
        }
        if written { clearListingPending(rebuilt: rebuild) }
    }

    /// Appends one line to this boot's listing: true when done, false when it failed, nil when the file
    /// is missing, from another boot, or due for compaction.
    private func append(_ line: String) -> Bool? {
        // Read-write: the header is read through the same descriptor the line is appended on.
        let fd = open(layout.listingPath, O_RDWR | O_APPEND | O_CLOEXEC)
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
        // `ps` reads every line, superseded ones too: at most a quarter more than there are containers
        // (and 16 KiB), while a compaction's rewrite is paid once per that many changes.
        guard Int(info.st_size) + bytes.count <= compacted + compacted / 4 + 16 * 1024 else { return nil }
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

    /// The listing's bytes and where the last line of each ID still listed is in them, in the order IDs
    /// were (last) added, unparsed; nil when there is no listing, it is another boot's, or a line has no ID.
    private func currentLines() -> (bytes: [UInt8], lines: [Range<Int>])? {
        guard let bytes = try? Files.read(layout.listingPath) else { return nil }
        let newline = UInt8(ascii: "\n")
        let lines = bytes.withUnsafeBufferPointer { buffer -> [Range<Int>]? in
            guard let headerEnd = ListingFields.index(of: newline, in: buffer),
                Self.compactedSize(header: bytes[..<headerEnd]) != nil
            else { return nil }
            // Slot of each ID in `current` (nil there once removed): one lookup per line.
            let estimate = buffer.count / 96
            var slots: [ListedID: Int] = [:]
            slots.reserveCapacity(estimate)
            var current: [Range<Int>?] = []
            current.reserveCapacity(estimate)
            var start = headerEnd + 1
            while start < buffer.count {
                let end = ListingFields.index(of: newline, in: buffer, from: start) ?? buffer.count
                let range = start..<end
                start = end + 1
                guard !range.isEmpty else { continue }
                let line = UnsafeBufferPointer(rebasing: buffer[range])
                guard let tab = ListingFields.index(of: ContainerSummary.tab, in: line) else { return nil }
                let id = ListedID(bytes: UnsafeBufferPointer(rebasing: line[..<tab]))
                if line.count == tab + 2 && line[tab + 1] == UInt8(ascii: "-") {
                    if let slot = slots.removeValue(forKey: id) { current[slot] = nil }
                } else if let slot = slots[id] {
                    current[slot] = range
                } else {
                    slots[id] = current.count
                    current.append(range)
                }
            }
            return current.compactMap { $0 }
        }
        return lines.map { (bytes, $0) }
    }

    /// This boot's random ID: a listing from another boot may lack changes a power loss took.
    static func bootID() -> String { currentBootID }

    /// Read once a process: it cannot change while the process lives.
    private static let currentBootID: String = {
        guard let bytes = try? Files.read("/proc/sys/kernel/random/boot_id") else { return "unknown" }
        return String(decoding: bytes, as: UTF8.self).trimmingSuffixNewlines()
    }()
}

/// A container ID in the listing as a dictionary key, hashed on its length and last eight bytes: IDs are
/// random hex, and hashing all 64 bytes of each of a thousand IDs byte by byte cost more than parsing
/// the lines. Equality still compares every byte. Valid only while the listing's bytes are.
private struct ListedID: Hashable {
    let bytes: UnsafeBufferPointer<UInt8>

    func hash(into hasher: inout Hasher) {
        var tail: UInt64 = 0
        for byte in bytes.suffix(8) { tail = tail << 8 | UInt64(byte) }
        hasher.combine(bytes.count)
        hasher.combine(tail)
    }

    static func == (lhs: ListedID, rhs: ListedID) -> Bool {
        guard lhs.bytes.count == rhs.bytes.count, let left = lhs.bytes.baseAddress, let right = rhs.bytes.baseAddress
        else { return lhs.bytes.count == rhs.bytes.count }
        return memcmp(left, right, lhs.bytes.count) == 0
    }
}
