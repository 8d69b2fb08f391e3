import Glibc

/// Pier's cache of who holds each lease in a disk lease directory, so ADD and DEL need not
/// open every lease file. It is only a cache: the lease files stay the truth, and a missing,
/// stale or corrupt index means reading the files (and rebuilding it).
///
/// An entry is trusted only while the directory is exactly as the index last saw it (same
/// directory inode and mtime) and the lease file still has the recorded inode. The mtime
/// check is what catches host-local deleting a lease and creating the same address again:
/// ext4 readily reuses the freed inode number, so the inode alone cannot tell the files apart.
///
/// The file sits in the lease directory (`LeaseFiles`) as `.pier-lease-index`, which is not an address, so
/// neither plugin takes it for a lease. host-local may read it (its header line can never
/// match a container ID or `id\r\nifname`) and its GC may delete it; both are harmless.
public struct LeaseIndex: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var inode: UInt64
        public var containerID: String
        public var ifname: String?

        public init(inode: UInt64, containerID: String, ifname: String?) {
            self.inode = inode
            self.containerID = containerID
            self.ifname = ifname
        }
    }

    /// What changes whenever a name in the directory is created, removed or renamed.
    public struct DirectoryState: Equatable, Sendable {
        public var inode: UInt64
        public var seconds: Int
        public var nanoseconds: Int

        public init(inode: UInt64, seconds: Int, nanoseconds: Int) {
            self.inode = inode
            self.seconds = seconds
            self.nanoseconds = nanoseconds
        }

        /// nil when the directory cannot be stat'ed (then nothing is trusted).
        public init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            self.init(
                inode: UInt64(info.st_ino), seconds: Int(info.st_mtim.tv_sec), nanoseconds: Int(info.st_mtim.tv_nsec))
        }
    }

    public static let fileName = ".pier-lease-index"
    public static let header = "pier-lease-index 1"

    public var directory: DirectoryState
    /// Keyed by the lease file's name (the canonical address text).
    public var entries: [String: Entry]

    public init(directory: DirectoryState, entries: [String: Entry]) {
        self.directory = directory
        self.entries = entries
    }

    /// Owners are stored space-separated, so only values without whitespace or control bytes
    /// (all that libcni allows) are indexed; anything else is always read from its file.
    public static func canStore(_ entry: Entry) -> Bool {
        isField(entry.containerID) && (entry.ifname.map(isField) ?? true)
    }

    private static func isField(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7f }
    }

    /// header, `dir <inode> <sec> <nsec>`, one `<name> <inode> <id> [<ifname>]` line per lease,
    /// then `end <count> <checksum>` so a torn or truncated write is detected. Built and parsed
    /// byte by byte: every ADD and DEL does both, for every lease in the network.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + entries.count * 48)
        bytes += Self.header.utf8
        bytes.append(Self.newline)
        bytes += "dir ".utf8
        Self.appendDecimal(directory.inode, to: &bytes)
        bytes.append(Self.space)
        Self.appendDecimal(UInt64(max(directory.seconds, 0)), to: &bytes)
        bytes.append(Self.space)
        Self.appendDecimal(UInt64(max(directory.nanoseconds, 0)), to: &bytes)
        bytes.append(Self.newline)
        for (name, entry) in entries {
            bytes += name.utf8
            bytes.append(Self.space)
            Self.appendDecimal(entry.inode, to: &bytes)
            bytes.append(Self.space)
            bytes += entry.containerID.utf8
            if let ifname = entry.ifname {
                bytes.append(Self.space)
                bytes += ifname.utf8
            }
            bytes.append(Self.newline)
        }
        let checksum = Self.checksum(bytes[...])
        bytes += "end ".utf8
        Self.appendDecimal(UInt64(entries.count), to: &bytes)
        bytes.append(Self.space)
        bytes += String(checksum, radix: 16).utf8
        bytes.append(Self.newline)
        return bytes
    }

    /// nil for anything that is not a complete index of this version.
    public init?(decoding bytes: [UInt8]) {
        guard bytes.last == Self.newline,
            let trailerStart = bytes.dropLast().lastIndex(of: Self.newline).map({ $0 + 1 })
        else { return nil }
        let trailer = bytes[trailerStart..<(bytes.count - 1)].split(separator: Self.space)
        let body = bytes[..<trailerStart]
        guard trailer.count == 3, trailer[0].elementsEqual("end".utf8),
            let count = Self.decimal(trailer[1]).flatMap({ Int(exactly: $0) }),
            UInt64(String(decoding: trailer[2], as: UTF8.self), radix: 16) == Self.checksum(body)
        else { return nil }
        var lines = Self.lineRanges(body)[...]
        guard lines.count == count + 2, let first = lines.popFirst(), body[first].elementsEqual(Self.header.utf8),
            let dirLine = lines.popFirst()
        else { return nil }
        let dir = Self.fieldRanges(body, dirLine)
        guard dir.count == 4, body[dir[0]].elementsEqual("dir".utf8), let inode = Self.decimal(body[dir[1]]),
            let seconds = Self.decimal(body[dir[2]]), let nanoseconds = Self.decimal(body[dir[3]])
        else { return nil }
        var entries: [String: Entry] = [:]
        entries.reserveCapacity(count)
        for line in lines {
            let fields = Self.fieldRanges(body, line)
            guard fields.count == 3 || fields.count == 4, let fileInode = Self.decimal(body[fields[1]]) else {
                return nil
            }
            entries[String(decoding: body[fields[0]], as: UTF8.self)] = Entry(
                inode: fileInode, containerID: String(decoding: body[fields[2]], as: UTF8.self),
                ifname: fields.count == 4 ? String(decoding: body[fields[3]], as: UTF8.self) : nil)
        }
        guard entries.count == count else { return nil }
        self.init(
            directory: DirectoryState(
                inode: inode, seconds: Int(truncatingIfNeeded: seconds),
                nanoseconds: Int(truncatingIfNeeded: nanoseconds)),
            entries: entries)
    }

    /// The non-empty lines of `bytes`, as index ranges (no copies).
    private static func lineRanges(_ bytes: ArraySlice<UInt8>) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = bytes.startIndex
        for index in bytes.indices where bytes[index] == newline {
            if index > start { ranges.append(start..<index) }
            start = index + 1
        }
        if start < bytes.endIndex { ranges.append(start..<bytes.endIndex) }
        return ranges
    }

    /// The space-separated fields of `line` (at most five, so a garbage line stays cheap).
    private static func fieldRanges(_ bytes: ArraySlice<UInt8>, _ line: Range<Int>) -> [Range<Int>] {
        var fields: [Range<Int>] = []
        fields.reserveCapacity(4)
        var start = line.lowerBound
        for index in line where bytes[index] == space {
            if index > start { fields.append(start..<index) }
            start = index + 1
            if fields.count == 5 { return fields }
        }
        if start < line.upperBound { fields.append(start..<line.upperBound) }
        return fields
    }

    private static let space = UInt8(ascii: " ")
    private static let newline = UInt8(ascii: "\n")

    private static func appendDecimal(_ value: UInt64, to bytes: inout [UInt8]) {
        let start = bytes.count
        var rest = value
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        bytes[start...].reverse()
    }

    /// A decimal without sign or leading garbage; nil otherwise (or when it overflows).
    private static func decimal(_ text: ArraySlice<UInt8>) -> UInt64? {
        guard !text.isEmpty, text.count <= 20 else { return nil }
        var value: UInt64 = 0
        for byte in text {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    /// FNV-1a, enough to tell a torn write from a whole one.
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// Pier's owner-keyed view of a disk lease directory, so ADD and DEL find an attachment's
/// leases without listing the directory: `<dir>/.pier-owners/<containerID>:<ifname>` is a
/// symbolic link whose target is the comma-separated addresses the attachment holds (neither
/// part can contain `:`, `/` or whitespace). Like `LeaseIndex` it is only a cache: a link is
/// a hint that is checked against the lease file before it is believed, and the view as a
/// whole is trusted only while `.pier-owners/.state` says nobody else has changed the lease
/// directory since Pier last brought the links up to date (`LeaseOwnerLinks.State`).
///
/// host-local walks into the subdirectory and reads each entry as a lease: a link's target
/// resolves to nothing, and the state line cannot equal a container ID or `id\r\nifname`.
public enum LeaseOwnerLinks {
    public static let directoryName = ".pier-owners"
    public static let stateName = ".state"
    public static let header = "pier-owner-links"
    public static let version = "1"

    /// The link's name, or nil when the pair does not fit a file name (then the directory can
    /// only be listed).
    public static func linkName(containerID: String, ifname: String) -> String? {
        guard !containerID.isEmpty, !ifname.isEmpty,
            containerID.utf8.allSatisfy(isNameByte), ifname.utf8.allSatisfy(isNameByte),
            containerID.utf8.count + 1 + ifname.utf8.count <= 255
        else { return nil }
        return containerID + ":" + ifname
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte != 0x7f && byte != UInt8(ascii: "/") && byte != UInt8(ascii: ":")
            && byte != UInt8(ascii: ",")
    }

    public static func target(addresses: [String]) -> String { addresses.sorted().joined(separator: ",") }

    public static func addresses(inTarget target: String) -> [String] {
        target.split(separator: ",").map(String.init)
    }

    /// What must be unchanged for the links to be complete: the lease directory and the link
    /// directory exactly as Pier left them, and the round-robin markers with the bytes Pier
    /// left in them. Every writer of a lease rewrites its range set's marker (host-local in
    /// `Reserve`, Pier in ADD), so a lease someone else created is noticed through the marker
    /// even where the directory's timestamp is too coarse to have changed.
    public struct State: Equatable, Sendable {
        public var leaseDirectory: LeaseIndex.DirectoryState
        public var linkDirectory: LeaseIndex.DirectoryState
        /// Marker `i`'s bytes, nil when it does not exist.
        public var markers: [[UInt8]?]

        public init(
            leaseDirectory: LeaseIndex.DirectoryState, linkDirectory: LeaseIndex.DirectoryState, markers: [[UInt8]?]
        ) {
            self.leaseDirectory = leaseDirectory
            self.linkDirectory = linkDirectory
            self.markers = markers
        }

        /// One line: header, version, both directories, each marker in hex (`-` when missing, `.`
        /// when empty), and `end`, so a torn write is never taken for a whole one.
        public func encoded() -> [UInt8] {
            var fields = [LeaseOwnerLinks.header, LeaseOwnerLinks.version]
            for directory in [leaseDirectory, linkDirectory] {
                fields += [String(directory.inode), String(directory.seconds), String(directory.nanoseconds)]
            }
            for marker in markers {
                fields.append(marker.map { $0.isEmpty ? "." : $0.map(State.hex).joined() } ?? "-")
            }
            fields.append("end")
            return Array((fields.joined(separator: " ") + "\n").utf8)
        }

        public init?(decoding bytes: [UInt8]) {
            guard bytes.last == UInt8(ascii: "\n") else { return nil }
            let fields = bytes.dropLast().split(separator: UInt8(ascii: " ")).map {
                String(decoding: $0, as: UTF8.self)
            }
            guard fields.count >= 9, fields[0] == LeaseOwnerLinks.header, fields[1] == LeaseOwnerLinks.version,
                fields.last == "end"
            else { return nil }
            let numbers = fields[2..<8].compactMap { Int($0) }
            guard numbers.count == 6, numbers[0] >= 0, numbers[3] >= 0 else { return nil }
            var markers: [[UInt8]?] = []
            for field in fields[8..<(fields.count - 1)] {
                if field == "-" {
                    markers.append(nil)
                } else if field == "." {
                    markers.append([])
                } else {
                    guard let bytes = State.bytes(hex: field) else { return nil }
                    markers.append(bytes)
                }
            }
            self.init(
                leaseDirectory: .init(inode: UInt64(numbers[0]), seconds: numbers[1], nanoseconds: numbers[2]),
                linkDirectory: .init(inode: UInt64(numbers[3]), seconds: numbers[4], nanoseconds: numbers[5]),
                markers: markers)
        }

        private static func hex(_ byte: UInt8) -> String {
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
        }

        private static func bytes(hex text: String) -> [UInt8]? {
            let digits = Array(text.utf8)
            guard !digits.isEmpty, digits.count % 2 == 0 else { return nil }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(digits.count / 2)
            var index = 0
            while index < digits.count {
                guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
                bytes.append(high << 4 | low)
                index += 2
            }
            return bytes
        }

        private static func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
    }
}
