import Glibc

/// An exclusive `flock(2)` on a lock file: the one lock every store of Pier's uses (leases, cluster
/// records, names, services, the runtime's state). The lock belongs to the open file description, so
/// separate instances exclude each other even inside one process (tests rely on this), and the kernel
/// drops it when the last descriptor closes, so a holder that dies never leaves a store locked.
public final class FileLock {
    public let path: String
    private var fd: Int32

    /// Opens (creating if needed) the lock file; does not lock yet. `inheritable` leaves the descriptor
    /// open across exec: processes started while the lock is held keep it until they exit (the runtime's
    /// store lock, so a `pier` killed during an ADD cannot let `gc` race the orphaned plugin).
    public init(path: String, mode: mode_t = 0o644, inheritable: Bool = false) throws(FileSystemError) {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | (inheritable ? 0 : O_CLOEXEC), mode)
        if fd < 0 { throw FileSystemError("open", path, errno: Glibc.errno) }
        self.fd = fd
    }

    deinit { release() }

    /// Blocks until the lock is held; it stays held until `release()` (or this object goes away).
    public func lock() throws(FileSystemError) {
        while flock(fd, LOCK_EX) != 0 {
            if Glibc.errno != EINTR { throw FileSystemError("flock", path, errno: Glibc.errno) }
        }
    }

    /// Takes the lock if nobody holds it now; never waits.
    public func tryLock() -> Bool { flock(fd, LOCK_EX | LOCK_NB) == 0 }

    /// Drops the lock by closing the descriptor (a copy inherited by a child keeps it until that exits).
    public func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    /// Runs `body` while holding the lock; blocks until it is free.
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        try lock()
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
