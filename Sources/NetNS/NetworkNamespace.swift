import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

/// What went wrong with a namespace operation, with the errno the kernel gave.
public struct NamespaceError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(_ operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// The namespace is not there (any more): DEL treats this as success.
    public var isNotFound: Bool { errno == ENOENT }

    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// An open handle on a network namespace: a file descriptor on an nsfs (or /proc) path.
///
/// Namespace membership is per thread, so `perform` switches only the calling thread and
/// always switches back before returning. Callers must not suspend (`await`) inside it.
public final class NetworkNamespace: @unchecked Sendable {
    public let path: String
    public let fileDescriptor: Int32

    private init(path: String, fileDescriptor: Int32) {
        self.path = path
        self.fileDescriptor = fileDescriptor
    }

    deinit { close(fileDescriptor) }

    /// Opens the namespace at `path` (for example `/run/netns/x` or `/proc/<pid>/ns/net`) and
    /// checks that it really is a namespace file, as the reference `ns.GetNS` does.
    public static func open(path: String) throws(NamespaceError) -> NetworkNamespace {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NamespaceError("open network namespace", path: path, errno: errno) }
        var fs = statfs()
        guard fstatfs(fd, &fs) == 0 else {
            let err = errno
            close(fd)
            throw NamespaceError("statfs", path: path, errno: err)
        }
        // NSFS_MAGIC (since 3.19) or PROC_SUPER_MAGIC (older kernels expose ns files in procfs).
        let magic = UInt64(bitPattern: Int64(fs.f_type))
        guard magic == 0x6e73_6673 || magic == 0x9fa0 else {
            close(fd)
            throw NamespaceError("not a network namespace", path: path, errno: EINVAL)
        }
        return NetworkNamespace(path: path, fileDescriptor: fd)
    }

    /// The calling thread's own network namespace.
    public static func current() throws(NamespaceError) -> NetworkNamespace {
        try open(path: "/proc/thread-self/ns/net")
    }

    /// Device and inode identify a namespace: two handles on the same namespace compare equal.
    public var identity: (device: UInt64, inode: UInt64) {
        var st = stat()
        guard fstat(fileDescriptor, &st) == 0 else { return (0, 0) }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    public func isSame(as other: NetworkNamespace) -> Bool {
        identity == other.identity
    }

    /// Runs `body` with the calling thread inside this namespace, then switches back.
    /// Sockets created inside stay bound to this namespace after the switch back.
    public func perform<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        let home = try NetworkNamespace.current()
        if home.isSame(as: self) { return try body() }
        guard pier_setns(fileDescriptor, pier_clone_newnet()) == 0 else {
            throw NamespaceError("setns into", path: path, errno: errno)
        }
        defer {
            // A thread left in the wrong namespace would silently corrupt every later
            // operation: there is no safe way to go on.
            if pier_setns(home.fileDescriptor, pier_clone_newnet()) != 0 {
                fatalError("cannot switch back to the original network namespace: errno \(errno)")
            }
        }
        return try body()
    }
}

extension NetworkNamespace {
    /// Creates a network namespace pinned by a bind mount at `<runDirectory>/<name>`, the layout
    /// `ip netns` uses, so it outlives any process.
    public static func create(
        named name: String, runDirectory: String = "/run/netns"
    ) throws(NamespaceError) -> NetworkNamespace {
        guard isValidName(name) else { throw NamespaceError("invalid namespace name", path: name, errno: EINVAL) }
        try prepareRunDirectory(runDirectory)
        let target = runDirectory + "/" + name
        let fd = Glibc.open(target, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
        guard fd >= 0 else { throw NamespaceError("create mount point", path: target, errno: errno) }
        close(fd)

        let home = try current()
        guard pier_unshare(pier_clone_newnet()) == 0 else {
            let err = errno
            unlink(target)
            throw NamespaceError("unshare network namespace", path: target, errno: err)
        }
        let mounted = mount("/proc/thread-self/ns/net", target, "none", UInt(MS_BIND), nil) == 0
        let mountErrno = errno
        if pier_setns(home.fileDescriptor, pier_clone_newnet()) != 0 {
            fatalError("cannot switch back to the original network namespace: errno \(errno)")
        }
        guard mounted else {
            unlink(target)
            throw NamespaceError("bind-mount network namespace", path: target, errno: mountErrno)
        }
        return try open(path: target)
    }

    /// A fresh namespace with no name and no mount: it lives as long as this handle (and any
    /// socket opened inside it). For probes that must not be seen by anyone.
    public static func createAnonymous() throws(NamespaceError) -> NetworkNamespace {
        let home = try current()
        guard pier_unshare(pier_clone_newnet()) == 0 else {
            throw NamespaceError("unshare network namespace", path: "(anonymous)", errno: errno)
        }
        let fd = Glibc.open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        let openErrno = errno
        if pier_setns(home.fileDescriptor, pier_clone_newnet()) != 0 {
            fatalError("cannot switch back to the original network namespace: errno \(errno)")
        }
        guard fd >= 0 else { throw NamespaceError("open anonymous namespace", path: "(anonymous)", errno: openErrno) }
        return NetworkNamespace(path: "(anonymous)", fileDescriptor: fd)
    }

    /// Unmounts and removes a named namespace. A namespace that is already gone is not an error.
    public static func delete(named name: String, runDirectory: String = "/run/netns") throws(NamespaceError) {
        guard isValidName(name) else { throw NamespaceError("invalid namespace name", path: name, errno: EINVAL) }
        try delete(path: runDirectory + "/" + name)
    }

    public static func delete(path: String) throws(NamespaceError) {
        if umount2(path, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
            throw NamespaceError("unmount network namespace", path: path, errno: errno)
        }
        if unlink(path) != 0 && errno != ENOENT {
            throw NamespaceError("remove network namespace file", path: path, errno: errno)
        }
    }

    /// Namespace names become file names: no separators, no dot names, nothing empty.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255 && name != "." && name != ".."
            && !name.contains("/") && !name.contains("\0")
    }

    /// Makes the run directory a shared mount point, as `ip netns add` does, so the bind
    /// mounts below it show up in every mount namespace.
    private static func prepareRunDirectory(_ directory: String) throws(NamespaceError) {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw NamespaceError("create directory", path: directory, errno: errno)
        }
        let sharedRecursive = UInt(MS_SHARED) | UInt(MS_REC)
        if mount("", directory, "none", sharedRecursive, nil) == 0 { return }
        guard errno == EINVAL else { throw NamespaceError("make mount shared", path: directory, errno: errno) }
        guard mount(directory, directory, "none", UInt(MS_BIND) | UInt(MS_REC), nil) == 0 else {
            throw NamespaceError("bind-mount directory on itself", path: directory, errno: errno)
        }
        guard mount("", directory, "none", sharedRecursive, nil) == 0 else {
            throw NamespaceError("make mount shared", path: directory, errno: errno)
        }
    }
}
