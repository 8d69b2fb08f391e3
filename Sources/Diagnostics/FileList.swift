#if canImport(Glibc)
    import Glibc
#endif

/// Access checks doctor makes on state directories. Reading Pier's state goes through
/// `PierState`, which owns every on-disk format; diagnostics never write it.
enum FileList {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Readable and writable by this process (root passes unless the file system is read-only).
    static func isReadWrite(_ path: String) -> Bool { access(path, R_OK | W_OK | X_OK) == 0 }
}
