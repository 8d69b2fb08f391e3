import ClusterStore
import Glibc
import IPAddressing

/// host-local's on-disk lease store, byte-compatible so a host can switch between the Go
/// plugin and this one:
///
///     <dataDir>/<network>/lock                 flock(LOCK_EX) around every read-decide-write
///     <dataDir>/<network>/<ip>                 "<containerID>\r\n<ifname>" (legacy: "<containerID>")
///     <dataDir>/<network>/last_reserved_ip.<N> the last address handed out from range set N
///
/// Unlike host-local, a lease file is written to a temporary name and hard-linked into
/// place, so a process killed mid-write never leaves an empty or partial lease.
public final class DiskLeaseStore: LeaseBackend {
    public let directory: String
    static let lastReservedPrefix = "last_reserved_ip."

    /// `network` must already be validated (`Identifier.isValid`).
    public init(dataDir: String, network: String) {
        self.directory = dataDir + "/" + network
    }

    public func exclusively<T>(_ body: () throws(IPAMError) -> T) throws(IPAMError) -> T {
        let lock: FileLock
        do {
            try FileSystem.makeDirectories(directory)
            lock = try FileLock(path: directory + "/lock")
        } catch {
            throw IPAMError(
                .io, "cannot open lease directory \(directory)", details: error.description, errno: error.errno)
        }
        do {
            return try lock.withLock { () throws(IPAMError) -> T in
                FileSystem.removeStrayTemporaries(in: directory)
                return try body()
            }
        } catch let error as IPAMError {
            throw error
        } catch let error as FileSystemError {
            throw IPAMError(.io, "cannot lock \(directory)/lock", details: error.description, errno: error.errno)
        } catch {
            throw IPAMError(.io, "cannot lock \(directory)/lock", details: "\(error)")
        }
    }

    public func leases() throws(IPAMError) -> [Lease] {
        let names: [String]
        do {
            names = try FileSystem.list(directory) ?? []
        } catch {
            throw IPAMError(.io, "cannot list \(directory)", details: error.description, errno: error.errno)
        }
        var leases: [Lease] = []
        for name in names {
            // Only canonical address names are leases; lock, markers and temporaries are not.
            guard let address = IPAddress(name), address.description == name else { continue }
            guard let contents = try? FileSystem.read(directory + "/" + name) else { continue }
            guard let owner = Self.parseOwner(contents) else { continue }
            leases.append(Lease(address: address, containerID: owner.containerID, ifname: owner.ifname))
        }
        return leases.sorted { $0.address < $1.address }
    }

    public func reserve(_ address: IPAddress, for attachment: Attachment) throws(IPAMError) -> Bool {
        do {
            return try FileSystem.createExclusively(
                directory: directory, name: address.description, contents: Self.record(for: attachment))
        } catch {
            throw IPAMError(
                .io, "cannot reserve \(address) in \(directory)", details: error.description, errno: error.errno)
        }
    }

    public func release(_ lease: Lease) throws(IPAMError) {
        do {
            try FileSystem.remove(directory + "/" + lease.address.description)
        } catch {
            throw IPAMError(
                .io, "cannot release \(lease.address) in \(directory)", details: error.description, errno: error.errno)
        }
    }

    public func lastReserved(rangeSetIndex index: Int) -> IPAddress? {
        guard let bytes = try? FileSystem.read(directory + "/" + Self.lastReservedPrefix + String(index)) else {
            return nil
        }
        return IPAddress(String(decoding: bytes, as: UTF8.self).trimmingWhitespace())
    }

    public func recordLastReserved(_ address: IPAddress, rangeSetIndex index: Int) throws(IPAMError) {
        do {
            try FileSystem.replace(
                directory: directory, name: Self.lastReservedPrefix + String(index),
                contents: Array(address.description.utf8), durable: false)
        } catch {
            throw IPAMError(
                .io, "cannot record last reserved address in \(directory)", details: error.description,
                errno: error.errno)
        }
    }

    public func isLocal(_ lease: Lease) -> Bool { true }

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

    /// host-local's record: the container ID, CR LF, the ifname.
    static func record(for attachment: Attachment) -> [UInt8] {
        Array((attachment.containerID + "\r\n" + attachment.ifname).utf8)
    }

    /// Parses a lease file the way host-local matches it: whitespace-trimmed, then
    /// `id\r\nifname` or a legacy bare `id`.
    static func parseOwner(_ bytes: [UInt8]) -> (containerID: String, ifname: String?)? {
        let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
        guard !text.isEmpty else { return nil }
        let utf8 = Array(text.utf8)
        for index in 0..<(utf8.count - 1) where utf8[index] == 13 && utf8[index + 1] == 10 {
            let id = String(decoding: utf8[..<index], as: UTF8.self)
            let ifname = String(decoding: utf8[(index + 2)...], as: UTF8.self)
            return (id, ifname)
        }
        return (text, nil)
    }
}

extension String {
    /// Trims ASCII whitespace (space, tab, CR, LF, VT, FF) from both ends, like Go's TrimSpace
    /// for the ASCII inputs lease files hold.
    func trimmingWhitespace() -> String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 32 || (9...13).contains($0) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
