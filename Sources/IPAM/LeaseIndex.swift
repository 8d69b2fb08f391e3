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
/// The file sits in the lease directory as `.pier-lease-index`, which is not an address, so
/// neither plugin takes it for a lease. host-local may read it (its header line can never
/// match a container ID or `id\r\nifname`) and its GC may delete it; both are harmless.
struct LeaseIndex: Equatable {
    struct Entry: Equatable {
        var inode: UInt64
        var containerID: String
        var ifname: String?
    }

    /// What changes whenever a name in the directory is created, removed or renamed.
    struct DirectoryState: Equatable {
        var inode: UInt64
        var seconds: Int
        var nanoseconds: Int

        init(inode: UInt64, seconds: Int, nanoseconds: Int) {
            self.inode = inode
            self.seconds = seconds
            self.nanoseconds = nanoseconds
        }

        /// nil when the directory cannot be stat'ed (then nothing is trusted).
        init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            self.init(
                inode: UInt64(info.st_ino), seconds: Int(info.st_mtim.tv_sec), nanoseconds: Int(info.st_mtim.tv_nsec))
        }
    }

    static let fileName = ".pier-lease-index"
    static let header = "pier-lease-index 1"

    var directory: DirectoryState
    /// Keyed by the lease file's name (the canonical address text).
    var entries: [String: Entry]

    init(directory: DirectoryState, entries: [String: Entry]) {
        self.directory = directory
        self.entries = entries
    }

    /// Owners are stored space-separated, so only values without whitespace or control bytes
    /// (all that libcni allows) are indexed; anything else is always read from its file.
    static func canStore(_ entry: Entry) -> Bool {
        isField(entry.containerID) && (entry.ifname.map(isField) ?? true)
    }

    private static func isField(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 != 0x7f }
    }

    /// header, `dir <inode> <sec> <nsec>`, one `<name> <inode> <id> [<ifname>]` line per lease,
    /// then `end <count> <checksum>` so a torn or truncated write is detected.
    func encoded() -> [UInt8] {
        var text = Self.header + "\n"
        text += "dir \(directory.inode) \(directory.seconds) \(directory.nanoseconds)\n"
        for (name, entry) in entries.sorted(by: { $0.key < $1.key }) {
            text += name + " " + String(entry.inode) + " " + entry.containerID
            if let ifname = entry.ifname { text += " " + ifname }
            text += "\n"
        }
        var bytes = Array(text.utf8)
        bytes += Array("end \(entries.count) \(String(Self.checksum(bytes[...]), radix: 16))\n".utf8)
        return bytes
    }

    /// nil for anything that is not a complete index of this version.
    init?(decoding bytes: [UInt8]) {
        let newline = UInt8(ascii: "\n")
        guard bytes.last == newline, let trailerStart = bytes.dropLast().lastIndex(of: newline).map({ $0 + 1 })
        else { return nil }
        let trailer = bytes[trailerStart..<(bytes.count - 1)].split(separator: UInt8(ascii: " "))
        let body = bytes[..<trailerStart]
        guard trailer.count == 3, String(decoding: trailer[0], as: UTF8.self) == "end",
            let count = Int(String(decoding: trailer[1], as: UTF8.self)),
            UInt64(String(decoding: trailer[2], as: UTF8.self), radix: 16) == Self.checksum(body)
        else { return nil }
        let lines = body.split(separator: newline)
        guard lines.count == count + 2, String(decoding: lines[0], as: UTF8.self) == Self.header else { return nil }
        let dir = lines[1].split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        guard dir.count == 4, dir[0] == "dir", let inode = UInt64(dir[1]), let seconds = Int(dir[2]),
            let nanoseconds = Int(dir[3])
        else { return nil }
        var entries: [String: Entry] = [:]
        entries.reserveCapacity(count)
        for line in lines.dropFirst(2) {
            let fields = line.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            guard fields.count == 3 || fields.count == 4, let fileInode = UInt64(fields[1]) else { return nil }
            entries[fields[0]] = Entry(
                inode: fileInode, containerID: fields[2], ifname: fields.count == 4 ? fields[3] : nil)
        }
        guard entries.count == count else { return nil }
        self.init(directory: DirectoryState(inode: inode, seconds: seconds, nanoseconds: nanoseconds), entries: entries)
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
