import Glibc
import PierState

/// The few file operations the runtime needs, over plain syscalls so modes and atomicity are exact;
/// reads and listings are `PierState.FileSystem`'s, with the runtime's errors.
enum Files {
    static func read(_ path: String) throws(RuntimeError) -> [UInt8] {
        let bytes: [UInt8]?
        do throws(FileSystemError) { bytes = try FileSystem.read(path) } catch {
            throw RuntimeError.system("\(error.operation) \(error.path)", errno: error.errno)
        }
        guard let bytes else { throw RuntimeError.system("open \(path)", errno: ENOENT) }
        return bytes
    }

    /// Writes to a temporary sibling, syncs and renames it into place, so a reader (or a `pier` killed
    /// half-way) only ever sees the old or the new whole file. `durable: false` skips the sync, for files
    /// that are rebuilt from others when a power loss leaves them stale.
    static func writeAtomically(
        _ bytes: [UInt8], to path: String, mode: mode_t = 0o644, durable: Bool = true
    ) throws(RuntimeError) {
        let temporary = FileSystem.siblingTemporaryPath(for: path)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw RuntimeError.system("create \(temporary)", errno: errno) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress.map { $0 + offset }, bytes.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(temporary)
                throw RuntimeError.system("write \(temporary)", errno: code)
            }
            offset += written
        }
        // The umask may have narrowed the mode; the cache promises exactly 0600.
        fchmod(fd, mode)
        if durable { fsync(fd) }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw RuntimeError.system("rename \(temporary)", errno: code)
        }
    }

    /// `mkdir -p` with `mode` on every directory it creates.
    static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(RuntimeError) {
        if isDirectory(path) { return }
        let parent = directoryName(path)
        if parent != path && parent != "/" && parent != "." { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw RuntimeError.system("mkdir \(path)", errno: errno) }
        chmod(path, mode)
    }

    /// Names in a directory (no `.`/`..`), sorted; empty when it does not exist.
    static func list(_ path: String) -> [String] { ((try? FileSystem.list(path)) ?? []).sorted() }

    /// A symlink's target, nil when `path` is not a symlink.
    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func remove(_ path: String) {
        unlink(path)
    }

    /// Removes a directory tree this runtime made (files and subdirectories, no mount points).
    static func removeTree(_ path: String) {
        for name in list(path) {
            let child = path + "/" + name
            var info = stat()
            if lstat(child, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR {
                removeTree(child)
            } else {
                unlink(child)
            }
        }
        rmdir(path)
    }
}

extension FileLock {
    /// The lock at `path`, held (waiting for it) until `release()`; `inheritable` as in `init`.
    static func held(at path: String, inheritable: Bool) throws(RuntimeError) -> FileLock {
        do throws(FileSystemError) {
            let lock = try FileLock(path: path, mode: 0o600, inheritable: inheritable)
            try lock.lock()
            return lock
        } catch {
            throw RuntimeError.system("lock \(path)", errno: error.errno)
        }
    }

    /// The lock at `path` if nobody holds it now, nil otherwise (never waits; not inherited by children).
    static func ifFree(at path: String) -> FileLock? {
        guard let lock = try? FileLock(path: path, mode: 0o600), lock.tryLock() else { return nil }
        return lock
    }
}
