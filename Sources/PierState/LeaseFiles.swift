import IPAddressing

/// host-local's on-disk lease layout, which Pier's `ipam` keeps byte for byte so a host can
/// switch between the two plugins:
///
///     <dataDir>/<network>/lock                 flock(LOCK_EX) around every read-decide-write
///     <dataDir>/<network>/<ip>                 "<containerID>\r\n<ifname>" (legacy: "<containerID>")
///     <dataDir>/<network>/last_reserved_ip.<N> the last address handed out from range set N
///     <dataDir>/<network>/.pier-lease-index    Pier's cache of the owners (`LeaseIndex`)
///
/// The IPAM lease store writes and reads it under the lock; diagnostics only read it. Both
/// parse through here, so `pier network inspect` shows exactly the leases `ipam` sees.
public enum LeaseFiles {
    public static let lockName = "lock"
    public static let lastReservedPrefix = "last_reserved_ip."

    /// A network's lease directory (`network` must be a valid network name).
    public static func directory(dataDirectory: String, network: String) -> String {
        dataDirectory + "/" + network
    }

    public static func lastReservedName(rangeSet index: Int) -> String { lastReservedPrefix + String(index) }

    /// Pier's record of the furthest address range set `index` ever handed out (an address
    /// beyond it was never anyone's: its first holder need not announce it). Named under
    /// host-local's marker prefix, which host-local's own listing skips.
    public static func furthestHandedOutName(rangeSet index: Int) -> String {
        lastReservedName(rangeSet: index) + ".furthest"
    }

    /// The address a directory entry is the lease of. Only canonical address text names a
    /// lease: `lock`, the round-robin markers, temporaries, the index, and addresses written
    /// any other way (which neither plugin would find when it checks an address) are not.
    public static func address(ofEntry name: String) -> IPAddress? {
        guard let address = IPAddress(name), address.description == name else { return nil }
        return address
    }

    /// host-local's record: the container ID, CR LF, the ifname.
    public static func record(containerID: String, ifname: String) -> [UInt8] {
        Array((containerID + "\r\n" + ifname).utf8)
    }

    /// Parses a lease file the way host-local matches it: whitespace-trimmed, then
    /// `id\r\nifname` (split at the first CR LF) or a legacy bare `id`. nil when empty: what a
    /// writer that died between create and write, or a power loss, leaves; the address is free.
    public static func owner(of bytes: [UInt8]) -> LeaseOwner? {
        let text = trimmingWhitespace(bytes)
        guard !text.isEmpty else { return nil }
        for index in text.indices.dropLast() where text[index] == 13 && text[index + 1] == 10 {
            return LeaseOwner(
                containerID: String(decoding: text[..<index], as: UTF8.self),
                ifname: String(decoding: text[(index + 2)...], as: UTF8.self))
        }
        return LeaseOwner(containerID: String(decoding: text, as: UTF8.self), ifname: nil)
    }

    /// The address a `last_reserved_ip.N` file holds, nil when it holds none.
    public static func lastReserved(from bytes: [UInt8]) -> IPAddress? {
        IPAddress(String(decoding: trimmingWhitespace(bytes), as: UTF8.self))
    }

    public static func lastReservedRecord(_ address: IPAddress) -> [UInt8] { Array(address.description.utf8) }

    /// Trims ASCII whitespace (space, tab, CR, LF, VT, FF) from both ends, like Go's TrimSpace
    /// for the ASCII inputs lease files hold.
    static func trimmingWhitespace(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        let isSpace: (UInt8) -> Bool = { $0 == 32 || (9...13).contains($0) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return [] }
        return bytes[first...last]
    }
}

/// Who holds a lease, as its file says.
public struct LeaseOwner: Sendable, Hashable {
    public var containerID: String
    /// nil for a legacy record that holds only the container ID.
    public var ifname: String?

    public init(containerID: String, ifname: String?) {
        self.containerID = containerID
        self.ifname = ifname
    }
}

/// Reads lease directories without locking or writing them (diagnostics). Allocation goes
/// through the IPAM lease store, which reads the same files through `LeaseFiles`.
public struct LeaseDirectory: Sendable {
    public let dataDirectory: String

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    /// One lease file and who holds it.
    public struct Entry: Sendable, Equatable {
        public var address: IPAddress
        public var owner: LeaseOwner
        public var path: String
    }

    public func directory(network: String) -> String {
        LeaseFiles.directory(dataDirectory: dataDirectory, network: network)
    }

    /// Networks that have a lease directory here, sorted.
    public func networks() -> [String] {
        sortedNames(dataDirectory).filter { FileSystem.isDirectory(dataDirectory + "/" + $0) }
    }

    /// The network's leases in name order; unreadable and empty files are left out, as the
    /// lease store leaves them out when it allocates.
    public func leases(network: String) -> [Entry] {
        let directory = directory(network: network)
        return sortedNames(directory).compactMap { name in
            guard let address = LeaseFiles.address(ofEntry: name),
                let bytes = (try? FileSystem.read(directory + "/" + name)) ?? nil,
                let owner = LeaseFiles.owner(of: bytes)
            else { return nil }
            return Entry(address: address, owner: owner, path: directory + "/" + name)
        }
    }

    private func sortedNames(_ directory: String) -> [String] { ((try? FileSystem.list(directory)) ?? []).sorted() }
}
