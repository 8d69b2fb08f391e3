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
/// owners, so listing leases is a readdir rather than a read of every lease file; and
/// `.pier-owners/` (`LeaseOwnerLinks`), so that ADD and DEL, while nobody else writes the
/// directory, neither list nor read it whole: they read the attachment's own link, try
/// addresses with an exclusive create as host-local does, and rewrite one link. Their cost does
/// not grow with the number of leases. Anything else that changed the directory sends the
/// session back to a listing, after which the links are brought up to date.
public final class DiskLeaseStore: LeaseBackend {
    public let directory: String
    /// How many range sets the network has: their round-robin markers are part of what the
    /// owner links are checked against.
    public let rangeSetCount: Int

    private enum Mode {
        /// No ADD or DEL asked yet in this lock session.
        case undecided
        /// The owner links are complete: an attachment's leases are read through its link.
        case linked
        /// The directory was listed; the links are rebuilt at the end of the session.
        case listed
    }
    private var mode = Mode.undecided
    /// Link name → the owner, for every owner whose leases this session looked up or changed.
    private var touchedOwners: [String: LeaseOwner] = [:]
    /// Link name → the addresses its link named when first read in this session, plus those
    /// reserved since.
    private var linkedAddresses: [String: Set<String>] = [:]
    /// Marker bytes read or written in this session (nil: the marker does not exist).
    private var markerCache: [Int: [UInt8]?] = [:]
    /// Whether every lease of the last listing made it into `index` (then the links can be
    /// rebuilt from it).
    private var indexHasEveryLease = false
    private var linkDirectory: String { directory + "/" + LeaseOwnerLinks.directoryName }
    private var statePath: String { linkDirectory + "/" + LeaseOwnerLinks.stateName }

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
    public init(dataDir: String, network: String, rangeSetCount: Int = 1) {
        self.directory = LeaseFiles.directory(dataDirectory: dataDir, network: network)
        self.rangeSetCount = rangeSetCount
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
                mode = .undecided
                touchedOwners = [:]
                linkedAddresses = [:]
                markerCache = [:]
                defer {
                    saveIndex()
                    saveOwnerLinks()
                    mode = .undecided
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
            indexHasEveryLease = index?.entries.count == leases.count
        }
        // Unsorted: callers look leases up; sorting a big network's list on every ADD costs more
        // than the lookups (`AddressManager.leases()` sorts for display).
        return leases
    }

    /// ADD's and DEL's view: while the owner links are complete, only `owner`'s leases, found
    /// through its link and each confirmed by its lease file; otherwise every lease (a listing),
    /// after which the session rebuilds the links.
    public func leases(concerning owner: LeaseOwner) throws(IPAMError) -> [Lease] {
        if mode == .undecided {
            mode = isLocked && Self.linkName(of: owner) != nil && ownerLinksAreComplete() ? .linked : .listed
        }
        guard mode == .linked, let link = Self.linkName(of: owner) else { return try leases() }
        touchedOwners[link] = owner
        if linkedAddresses[link] == nil { linkedAddresses[link] = Set(readLink(link)) }
        return (linkedAddresses[link] ?? []).sorted().compactMap { name in
            guard let address = IPAddress(name), holds(owner, name) else { return nil }
            return Lease(address: address, containerID: owner.containerID, ifname: owner.ifname)
        }
    }

    private static func linkName(of owner: LeaseOwner) -> String? {
        LeaseOwnerLinks.linkName(containerID: owner.containerID, ifname: owner.ifname)
    }

    /// Whether lease file `name` exists and records exactly `owner`.
    private func holds(_ owner: LeaseOwner, _ name: String) -> Bool {
        guard let bytes = (try? FileSystem.read(directory + "/" + name)) ?? nil,
            let recorded = LeaseFiles.owner(of: bytes)
        else { return false }
        return recorded.containerID == owner.containerID && recorded.ifname == owner.ifname
    }

    /// True when the state Pier recorded the last time it brought the links up to date still
    /// holds. Either way the record is emptied: until this session records a new one, a
    /// process that dies half-way leaves links no one trusts.
    private func ownerLinksAreComplete() -> Bool {
        let fd = open(statePath, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return false }
        let recorded = LeaseOwnerLinks.State(decoding: Array(bytes[..<count]))
        let isComplete = recorded != nil && recorded == currentLinkState()
        _ = ftruncate(fd, 0)
        return isComplete
    }

    private func currentLinkState() -> LeaseOwnerLinks.State? {
        guard let leaseDirectory = LeaseIndex.DirectoryState(path: directory),
            let linkDirectory = LeaseIndex.DirectoryState(path: linkDirectory)
        else { return nil }
        return LeaseOwnerLinks.State(
            leaseDirectory: leaseDirectory, linkDirectory: linkDirectory, markers: (0..<rangeSetCount).map(marker))
    }

    /// The addresses `link` names; none when it is missing or unreadable.
    private func readLink(_ link: String) -> [String] {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(linkDirectory + "/" + link, &buffer, buffer.count)
        guard count > 0, count < buffer.count else { return [] }
        let target = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return LeaseOwnerLinks.addresses(inTarget: target)
    }

    /// Points `link` at `addresses` (a new link renamed over the old one), or removes it when
    /// there are none. False when it could not.
    private func writeLink(_ link: String, _ addresses: [String]) -> Bool {
        let path = linkDirectory + "/" + link
        guard !addresses.isEmpty else { return unlink(path) == 0 || errno == ENOENT }
        let temporary = FileSystem.temporaryPath(in: linkDirectory)
        guard symlink(LeaseOwnerLinks.target(addresses: addresses), temporary) == 0 else { return false }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            return false
        }
        return true
    }

    /// At the end of a lock session that ran an ADD or DEL: the links of the owners it touched
    /// (linked mode), or all of them rebuilt from the listing (listed mode), then the state
    /// they are complete for. When they cannot be made complete no state is recorded, and the
    /// next session lists the directory again.
    private func saveOwnerLinks() {
        switch mode {
        case .undecided:
            return
        case .linked:
            for (link, owner) in touchedOwners {
                let held = (linkedAddresses[link] ?? []).filter { holds(owner, $0) }
                guard writeLink(link, Array(held)) else { return }
            }
        case .listed:
            guard indexIsCurrent, indexHasEveryLease, let entries = index?.entries else {
                unlink(statePath)
                return
            }
            var wanted: [String: [String]] = [:]
            for (name, entry) in entries {
                guard let ifname = entry.ifname,
                    let link = LeaseOwnerLinks.linkName(containerID: entry.containerID, ifname: ifname)
                else {
                    // A legacy or unnameable owner: only a listing finds its leases.
                    unlink(statePath)
                    return
                }
                wanted[link, default: []].append(name)
            }
            guard mkdir(linkDirectory, 0o755) == 0 || errno == EEXIST else { return }
            for (link, addresses) in wanted
            where readLink(link).sorted() != addresses.sorted() {
                guard writeLink(link, addresses) else {
                    unlink(statePath)
                    return
                }
            }
            for name in (try? FileSystem.list(linkDirectory)) ?? []
            where name != LeaseOwnerLinks.stateName && wanted[name] == nil {
                unlink(linkDirectory + "/" + name)
            }
        }
        // Created before the directories are looked at: creating it changes the link directory.
        let fd = open(statePath, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard let state = currentLinkState() else { return }
        let bytes = state.encoded()
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        if written != bytes.count || ftruncate(fd, off_t(bytes.count)) != 0 { _ = ftruncate(fd, 0) }
    }

    /// One lookup, instead of writing a temporary only to fail linking it. An empty lease found
    /// under the lock is reclaimed here as a listing would (see `leases()`): ADD and DEL through
    /// the owner links list nothing.
    public func isTaken(_ address: IPAddress) -> Bool {
        let path = directory + "/" + address.description
        var info = stat()
        guard lstat(path, &info) == 0 else { return false }
        if isLocked, info.st_mode & S_IFMT == S_IFREG, info.st_size == 0 { return unlink(path) != 0 }
        return true
    }

    public func reserve(_ address: IPAddress, for attachment: LeaseOwner) throws(IPAMError) -> Bool {
        do {
            let name = address.description
            if isTaken(address) { return false }
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
                if index?.entries[name] == nil { indexHasEveryLease = false }
            }
            if mode == .linked, let link = Self.linkName(of: attachment) {
                touchedOwners[link] = attachment
                linkedAddresses[link, default: []].insert(name)
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
            if mode == .linked, let ifname = lease.ifname,
                let link = LeaseOwnerLinks.linkName(containerID: lease.containerID, ifname: ifname)
            {
                touchedOwners[link] = LeaseOwner(containerID: lease.containerID, ifname: ifname)
            }
        } catch {
            throw IPAMError(
                .io, "cannot release \(lease.address) in \(directory)", details: error.description, errno: error.errno)
        }
    }

    public func lastReserved(rangeSetIndex index: Int) -> IPAddress? {
        guard let bytes = marker(index) else { return nil }
        return LeaseFiles.lastReserved(from: bytes)
    }

    /// Marker `index`'s bytes, read once per lock session (nil when missing or unreadable).
    private func marker(_ index: Int) -> [UInt8]? {
        if isLocked, let cached = markerCache[index] { return cached }
        let bytes = (try? FileSystem.read(directory + "/" + LeaseFiles.lastReservedName(rangeSet: index))) ?? nil
        if isLocked { markerCache[index] = .some(bytes) }
        return bytes
    }

    public func recordLastReserved(_ address: IPAddress, rangeSetIndex index: Int) throws(IPAMError) {
        do {
            markerCache[index] = nil
            let record = LeaseFiles.lastReservedRecord(address)
            try FileSystem.overwrite(directory + "/" + LeaseFiles.lastReservedName(rangeSet: index), contents: record)
            if isLocked { markerCache[index] = .some(record) }
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
