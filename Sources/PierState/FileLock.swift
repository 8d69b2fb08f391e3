import Glibc

/// An exclusive `flock(2)` on a lock file. The lock belongs to the open file description, so
/// separate instances exclude each other even inside one process (tests rely on this), and
/// the kernel drops it when a holder dies, so a crash never leaves the store locked.
public final class FileLock {
    public let path: String
    private let fd: Int32

    /// Opens (creating if needed) the lock file; does not lock yet.
    public init(path: String) throws(FileSystemError) {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw FileSystemError("open", path, errno: Glibc.errno) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Runs `body` while holding the lock; blocks until it is free.
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        while flock(fd, LOCK_EX) != 0 {
            if Glibc.errno != EINTR { throw FileSystemError("flock", path, errno: Glibc.errno) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
