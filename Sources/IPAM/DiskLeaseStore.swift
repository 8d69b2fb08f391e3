import Glibc
import IPAddressing
import PierState

/// host-local's on-disk lease store, byte-compatible so a host can switch between the Go
/// plugin and this one. The layout and the record format are `LeaseFiles`'.
///
/// Unlike host-local, a lease file is written to a temporary name and hard-linked into
/// place, so a process killed mid-write never leaves an empty or partial lease. Leases are not
/// fsynced (an fsync costs an ext4 disk milliseconds per ADD, and a lease does not outlive its
/// container, which a power loss ends anyway): an empty lease file, which only a power loss or
/// a host-local killed mid-write can leave, is reclaimed by the next listing under the lock.
///
/// Pier also keeps `<dataDir>/<network>/.pier-lease-index` (`LeaseIndex`), a cache of the
/// owners, so listing leases is a readdir rather than a read of every lease file.
public final class DiskLeaseStore: LeaseBackend {
    public let directory: String

    /// The index file as last read or written, kept so one ADD parses it at most once.
    private var saved: LeaseIndex?
    /// The leases as of this lock session's listing, with our own reserves and releases since.
    private var index: LeaseIndex?
    /// True once this lock session listed the directory, so `index` matches the files and our
    /// own reserves and releases may be applied to it.
    private var indexIsCurrent = false
    private var isLocked = false
    private var indexPath: String { directory + "/" + LeaseIndex.fileName }

    /// `network` must already be validated (`CNIValidation.isValidIdentifier`).
    public init(dataDir: String, network: String) {
        self.directory = LeaseFiles.directory(dataDirectory: dataDir, network: network)
    }

    public func exclusively<T>(_ body: () throws(IPAMError) -> T) throws(IPAMError) -> T {
        let lock: FileLock
        do {
            try FileSystem.makeDirectories(directory)
            lock = try FileLock(path: directory + "/" + LeaseFiles.lockName)
        } catch {
            throw IPAMError(
                .io, "cannot open lease directory \(directory)", details: error.description, errno: error.errno)
        }
        do {
            return try lock.withLock { () throws(IPAMError) -> T in
                // Temporaries a killed writer left behind are removed by `leases()`, whose
                // listing under the lock sees them anyway.
                isLocked = true
                indexIsCurrent = false
                defer {
                    saveIndex()
                    isLocked = false
                    indexIsCurrent = false
                }
                return try body()
            }
        } catch let error as IPAMError {
            throw error
        } catch let error as FileSystemError {
            throw IPAMError(
                .io, "cannot lock \(directory)/\(LeaseFiles.lockName)", details: error.description, errno: error.errno)
        } catch {
            throw IPAMError(.io, "cannot lock \(directory)/\(LeaseFiles.lockName)", details: "\(error)")
        }
    }

    public func leases() throws(IPAMError) -> [Lease] {
        // The state is taken before the listing, so an index saved from it is never newer
        // than what it describes.
        let state = LeaseIndex.DirectoryState(path: directory)
        let entries: [(name: String, inode: UInt64)]
        do {
            entries = try FileSystem.listWithInodes(directory) ?? []
        } catch {
            throw IPAMError(.io, "cannot list \(directory)", details: error.description, errno: error.errno)
        }
        var known: [String: LeaseIndex.Entry] = [:]
        if let state {
            if saved?.directory != state {
                saved = (try? FileSystem.read(indexPath)).flatMap { $0.flatMap(LeaseIndex.init(decoding:)) }
            }
            if let saved, saved.directory == state { known = saved.entries }
        }
        var leases: [Lease] = []
        leases.reserveCapacity(entries.count)
        // Entries the index vouches for are counted, not copied: when all of them are still
        // there (the usual case), the index is reused as it is.
        var confirmed = 0
        var added: [String: LeaseIndex.Entry] = [:]
        var current: [String: LeaseIndex.Entry] {
            var result: [String: LeaseIndex.Entry]
            if confirmed == known.count {
                result = known
            } else {
                result = [:]
                for (name, inode) in entries where known[name]?.inode == inode { result[name] = known[name] }
            }
            for (name, entry) in added { result[name] = entry }
            return result
        }
        for (name, inode) in entries {
            if isLocked, name.utf8.first == UInt8(ascii: "."), name.hasPrefix(FileSystem.temporaryPrefix) {
                unlink(directory + "/" + name)
                continue
            }
            if let entry = known[name], entry.inode == inode, let address = IPAddress(name) {
                leases.append(Lease(address: address, containerID: entry.containerID, ifname: entry.ifname))
                confirmed += 1
                continue
            }
            guard let address = LeaseFiles.address(ofEntry: name) else { continue }
            guard let contents = try? FileSystem.read(directory + "/" + name) else { continue }
            guard let owner = LeaseFiles.owner(of: contents) else {
                // Empty: no writer is active while we hold the lock (host-local takes the same
                // one), so this is what a crash or power loss left between create and write.
                // Reclaim the address rather than leave it blocked forever.
                if isLocked { unlink(directory + "/" + name) }
                continue
            }
            leases.append(Lease(address: address, containerID: owner.containerID, ifname: owner.ifname))
            let entry = LeaseIndex.Entry(inode: inode, containerID: owner.containerID, ifname: owner.ifname)
            if LeaseIndex.canStore(entry) { added[name] = entry }
        }
        // Only a lock holder's view is consistent enough to cache.
        if isLocked, let state {
            index = LeaseIndex(directory: state, entries: current)
            indexIsCurrent = true
        }
        // Unsorted: callers look leases up; sorting a big network's list on every ADD costs more
        // than the lookups (`AddressManager.leases()` sorts for display).
        return leases
    }

    public func reserve(_ address: IPAddress, for attachment: LeaseOwner) throws(IPAMError) -> Bool {
        do {
            let name = address.description
            guard
                try FileSystem.createExclusively(
                    directory: directory, name: name,
                    contents: LeaseFiles.record(containerID: attachment.containerID, ifname: attachment.ifname),
                    durable: false)
            else { return false }
            if indexIsCurrent {
                var info = stat()
                index?.entries[name] =
                    stat(directory + "/" + name, &info) == 0
                    ? LeaseIndex.Entry(
                        inode: UInt64(info.st_ino), containerID: attachment.containerID, ifname: attachment.ifname)
                    : nil
            }
            return true
        } catch {
            throw IPAMError(
                .io, "cannot reserve \(address) in \(directory)", details: error.description, errno: error.errno)
        }
    }

    public func release(_ lease: Lease) throws(IPAMError) {
        do {
            try FileSystem.remove(directory + "/" + lease.address.description)
            if indexIsCurrent { index?.entries[lease.address.description] = nil }
        } catch {
            throw IPAMError(
                .io, "cannot release \(lease.address) in \(directory)", details: error.description, errno: error.errno)
        }
    }

    public func lastReserved(rangeSetIndex index: Int) -> IPAddress? {
        guard let bytes = try? FileSystem.read(directory + "/" + LeaseFiles.lastReservedName(rangeSet: index)) else {
            return nil
        }
        return LeaseFiles.lastReserved(from: bytes)
    }

    public func recordLastReserved(_ address: IPAddress, rangeSetIndex index: Int) throws(IPAMError) {
        do {
            try FileSystem.overwrite(
                directory + "/" + LeaseFiles.lastReservedName(rangeSet: index),
                contents: LeaseFiles.lastReservedRecord(address))
        } catch {
            throw IPAMError(
                .io, "cannot record last reserved address in \(directory)", details: error.description,
                errno: error.errno)
        }
    }

    public func isLocal(_ lease: Lease) -> Bool { true }

    /// `last_reserved_ip.<set>.furthest` (beside host-local's round-robin marker, which host-local
    /// reads by its exact name): the furthest address of range set `index`, in hand-out order
    /// (`RangeSet.handOutPosition`), this store ever handed out; every address after it is
    /// unused. Round-robin allocation walks forward, so until it wraps around every address it
    /// picks is one nobody ever had. The record advances before the lease is written, so a
    /// failure in between only leaves it further on than needed.
    public func recordHandOut(_ address: IPAddress, in rangeSet: RangeSet, rangeSetIndex index: Int) -> Bool {
        let path = directory + "/" + LeaseFiles.furthestHandedOutName(rangeSet: index)
        guard let position = rangeSet.handOutPosition(of: address) else { return false }
        let recorded: [UInt8]?
        do { recorded = try FileSystem.read(path) } catch { return false }
        if let recorded {
            // Unreadable, or outside the set as configured now: what was handed out is unknown.
            guard let furthest = LeaseFiles.lastReserved(from: recorded),
                let furthestPosition = rangeSet.handOutPosition(of: furthest), furthestPosition < position
            else { return false }
            // host-local, sharing the directory, advances only the round-robin marker: what it
            // handed out lies at or before that marker.
            if access(directory + "/" + LeaseFiles.lastReservedName(rangeSet: index), F_OK) == 0 {
                guard let marker = lastReserved(rangeSetIndex: index),
                    let markerPosition = rangeSet.handOutPosition(of: marker), markerPosition < position
                else { return false }
            }
        } else if access(directory + "/" + LeaseFiles.lastReservedName(rangeSet: index), F_OK) == 0 {
            // Addresses were handed out before there was a record (an older Pier, host-local).
            return false
        }
        do {
            try FileSystem.overwrite(path, contents: LeaseFiles.lastReservedRecord(address))
            return true
        } catch {
            // A record left behind would claim the address is still unused.
            unlink(path)
            return false
        }
    }

    /// Rewrites the index in place at the end of a lock session that listed the directory,
    /// when the directory or the entries changed. In place, not through a temporary and a
    /// rename, because a rename would change the directory's mtime after it was recorded.
    /// No fsync: a torn index fails its checksum and only costs one slow listing.
    private func saveIndex() {
        guard indexIsCurrent, var updated = index else { return }
        let fd = open(indexPath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        // After the open: creating the file is itself a change to the directory.
        guard let state = LeaseIndex.DirectoryState(path: directory) else { return }
        updated.directory = state
        guard updated != saved else { return }
        saved = nil
        let bytes = updated.encoded()
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress.map { $0 + written }, raw.count - written, off_t(written))
            }
            if count < 0 && Glibc.errno == EINTR { continue }
            guard count > 0 else { return }
            written += count
        }
        if ftruncate(fd, off_t(bytes.count)) == 0 { saved = updated }
    }

    public func unavailableReason() -> String? {
        // The directory may not exist yet; then the nearest existing ancestor must let us create it.
        var path = directory
        while !path.isEmpty {
            var info = stat()
            if stat(path, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFDIR else { return "\(path) is not a directory" }
                return FileSystem.isWritable(path) ? nil : "lease directory \(path) is not writable"
            }
            path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        }
        return FileSystem.isWritable("/") ? nil : "no writable parent for \(directory)"
    }
}
