import Glibc

/// A failed system call on a path, with the errno, so callers can tell "gone" from "broken".
public struct FileSystemError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(_ operation: String, _ path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The small set of POSIX file operations that every reader and writer of Pier's on-disk state
/// shares (the lease store, the file cluster store, config and cache readers): exclusive and
/// atomic writes, directory listing, and locking, so all of them follow the same crash-safety
/// rules.
public enum FileSystem {
    /// Names starting with this prefix are in-flight writes. Every writer holds the directory
    /// lock while one exists, so one found by a lock holder belongs to a writer that died.
    public static let temporaryPrefix = ".pier-tmp-"

    /// A whole-file replacement is written to `<path>.tmp-<pid>` first and renamed into place
    /// (the runtime's records and the result cache); readers skip names containing this.
    public static let siblingTemporaryMarker = ".tmp-"

    public static func siblingTemporaryPath(for path: String) -> String {
        path + siblingTemporaryMarker + String(getpid())
    }

    /// The process that writes (or wrote) a sibling temporary, nil for any other name.
    public static func temporaryWriter(of name: String) -> pid_t? {
        let parts = name.components(separatedByText: siblingTemporaryMarker)
        guard parts.count == 2 else { return nil }
        return pid_t(parts[1])
    }

    public static func isSiblingTemporary(_ name: String) -> Bool {
        name.containsText(siblingTemporaryMarker)
    }

    /// Creates `directory` and its parents (mode 0755), tolerating ones that exist.
    public static func makeDirectories(_ directory: String) throws(FileSystemError) {
        var path = ""
        for component in directory.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o755) != 0 && Glibc.errno != EEXIST {
                throw FileSystemError("mkdir", path, errno: Glibc.errno)
            }
        }
    }

    /// The whole file, or nil when it does not exist.
    public static func read(_ path: String) throws(FileSystemError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if Glibc.errno == ENOENT { return nil }
            throw FileSystemError("open", path, errno: Glibc.errno)
        }
        defer { close(fd) }
        // Read straight into one array sized from fstat (with room to see the end in the same read, and to
        // grow for files such as /proc's that report no size): a big file read 4 KiB at a time and appended
        // was copied over and over as the array grew.
        var info = stat()
        let expected = fstat(fd, &info) == 0 && info.st_size > 0 ? Int(info.st_size) : 0
        var contents = [UInt8](repeating: 0, count: expected + 4096)
        var count = 0
        while true {
            if count == contents.count { contents += repeatElement(0, count: contents.count) }
            let got = contents.withUnsafeMutableBytes {
                Glibc.read(fd, $0.baseAddress.map { $0 + count }, $0.count - count)
            }
            if got < 0 {
                if Glibc.errno == EINTR { continue }
                throw FileSystemError("read", path, errno: Glibc.errno)
            }
            if got == 0 {
                contents.removeLast(contents.count - count)
                return contents
            }
            count += got
        }
    }

    /// Names in `directory` (without `.` and `..`), or nil when it does not exist.
    public static func list(_ directory: String) throws(FileSystemError) -> [String]? {
        guard let handle = opendir(directory) else {
            if Glibc.errno == ENOENT { return nil }
            throw FileSystemError("opendir", directory, errno: Glibc.errno)
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Names in `directory` (without `.` and `..`) with their inode numbers, which readdir
    /// gives without a stat; nil when the directory does not exist.
    public static func listWithInodes(_ directory: String) throws(FileSystemError) -> [(name: String, inode: UInt64)]? {
        guard let handle = opendir(directory) else {
            if Glibc.errno == ENOENT { return nil }
            throw FileSystemError("opendir", directory, errno: Glibc.errno)
        }
        defer { closedir(handle) }
        var entries: [(name: String, inode: UInt64)] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { entries.append((name, UInt64(entry.pointee.d_ino))) }
        }
        return entries
    }

    /// Writes `name` in `directory` only if no such file exists: the contents go to a
    /// temporary file first and are hard-linked into place, so the name never refers to a
    /// half-written file and `link(2)` gives the same exclusivity as `O_EXCL`.
    /// Returns false when the name already exists.
    ///
    /// `durable` fsyncs the contents before the link, so after a power loss the name, if it
    /// survived, never refers to an empty file; without it a power loss may leave the name
    /// with no contents, which the caller must then treat as garbage. The directory itself is
    /// never synced: losing a fresh name in a power loss only loses what died with the machine.
    public static func createExclusively(
        directory: String, name: String, contents: [UInt8], mode: mode_t = 0o644, durable: Bool = true
    ) throws(FileSystemError) -> Bool {
        let temporary = try writeTemporary(directory: directory, contents: contents, mode: mode, durable: durable)
        defer { unlink(temporary) }
        let target = directory + "/" + name
        if link(temporary, target) != 0 {
            if Glibc.errno == EEXIST { return false }
            throw FileSystemError("link", target, errno: Glibc.errno)
        }
        return true
    }

    /// Replaces (or creates) `name` in `directory` atomically with `rename(2)`. `durable`
    /// fsyncs the contents first; hints that are harmless to lose (round-robin markers) skip it.
    public static func replace(
        directory: String, name: String, contents: [UInt8], mode: mode_t = 0o644, durable: Bool = true
    ) throws(FileSystemError) {
        let temporary = try writeTemporary(directory: directory, contents: contents, mode: mode, durable: durable)
        let target = directory + "/" + name
        if rename(temporary, target) != 0 {
            let code = Glibc.errno
            unlink(temporary)
            throw FileSystemError("rename", target, errno: code)
        }
    }

    /// Writes `contents` over `path` in place (created if missing): one write and a truncate,
    /// no temporary and no rename. For hints a torn write cannot hurt: on ext4 a rename over an
    /// existing file forces its data to disk first (auto_da_alloc), milliseconds per call.
    public static func overwrite(_ path: String, contents: [UInt8], mode: mode_t = 0o644) throws(FileSystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode)
        if fd < 0 { throw FileSystemError("open", path, errno: Glibc.errno) }
        defer { close(fd) }
        var written = 0
        while written < contents.count {
            let count = contents.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress.map { $0 + written }, raw.count - written, off_t(written))
            }
            if count < 0 {
                if Glibc.errno == EINTR { continue }
                throw FileSystemError("write", path, errno: Glibc.errno)
            }
            written += count
        }
        if ftruncate(fd, off_t(contents.count)) != 0 { throw FileSystemError("truncate", path, errno: Glibc.errno) }
    }

    /// Removes a file; true if it existed.
    @discardableResult
    public static func remove(_ path: String) throws(FileSystemError) -> Bool {
        if unlink(path) == 0 { return true }
        if Glibc.errno == ENOENT { return false }
        throw FileSystemError("unlink", path, errno: Glibc.errno)
    }

    /// A fresh name in `directory` for a temporary (`temporaryPrefix`, pid, random): what
    /// `removeStrayTemporaries` and the listings that skip temporaries recognise.
    public static func temporaryPath(in directory: String) -> String {
        directory + "/" + temporaryPrefix + String(getpid()) + "-"
            + String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    /// Removes temporary files left by writers that died. Call only while holding the lock.
    public static func removeStrayTemporaries(in directory: String) {
        guard let names = try? list(directory) else { return }
        for name in names where name.hasPrefix(temporaryPrefix) {
            unlink(directory + "/" + name)
        }
    }

    /// True when `path` is a directory (following symlinks).
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// True when the process may create files in `directory`.
    public static func isWritable(_ directory: String) -> Bool {
        access(directory, W_OK | X_OK) == 0
    }

    private static func writeTemporary(
        directory: String, contents: [UInt8], mode: mode_t, durable: Bool
    ) throws(FileSystemError) -> String {
        let path = temporaryPath(in: directory)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 { throw FileSystemError("open", path, errno: Glibc.errno) }
        var written = 0
        while written < contents.count {
            let count = contents.withUnsafeBytes { raw in
                Glibc.write(fd, raw.baseAddress.map { $0 + written }, raw.count - written)
            }
            if count < 0 {
                if Glibc.errno == EINTR { continue }
                let code = Glibc.errno
                close(fd)
                unlink(path)
                throw FileSystemError("write", path, errno: code)
            }
            written += count
        }
        // Durable before it becomes visible under its real name.
        if durable && fsync(fd) != 0 {
            let code = Glibc.errno
            close(fd)
            unlink(path)
            throw FileSystemError("fsync", path, errno: code)
        }
        close(fd)
        return path
    }
}
