import Glibc
import IPAddressing
import JSON
import PierState

/// One upstream resolver: an address and a port (53 unless a config says otherwise).
public struct DNSUpstream: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16 = 53) {
        self.address = address
        self.port = port
    }

    /// `192.0.2.1`, `192.0.2.1:5353`, `2001:db8::1` or `[2001:db8::1]:5353`.
    public init?(_ text: String) {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            guard let address = IPAddress(String(text[text.index(after: text.startIndex)..<close])) else { return nil }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                self.init(address: address)
                return
            }
            guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()), port != 0 else { return nil }
            self.init(address: address, port: port)
        } else if let address = IPAddress(text) {
            self.init(address: address)
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let address = IPAddress(String(parts[0])), address.family == .v4,
                let port = UInt16(parts[1]), port != 0
            else { return nil }
            self.init(address: address, port: port)
        }
    }

    public var description: String {
        if port == 53 { return address.description }
        return address.family == .v6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

/// What one attachment registers: its names and addresses on one network, and the network's
/// settings as the attachment's config gave them (the server serves a network while any
/// attachment of it is registered, so no separate per-network file has to outlive them).
public struct NameRecord: Sendable, Equatable {
    public var network: String
    public var containerID: String
    public var ifName: String
    /// Container name, aliases and hostname, as given (compared case-insensitively).
    public var names: [String]
    public var addresses: [IPAddress]
    /// Where the server listens for this network: the gateways of the attachment's addresses.
    public var gateways: [IPAddress]
    public var domainName: String
    public var isInternal: Bool
    /// Resolvers to forward to; empty means the host's /etc/resolv.conf.
    public var upstreams: [DNSUpstream]
    /// The container's own resolvers (the `dns` capability, `pier run --dns`): its forwarded
    /// queries go there instead of the network's.
    public var containerUpstreams: [DNSUpstream]
    /// The cluster store the network's names are shared through (overlay networks), as the
    /// config gave it; nil for a network on this host only.
    public var store: JSONValue?

    public init(
        network: String, containerID: String, ifName: String, names: [String], addresses: [IPAddress],
        gateways: [IPAddress], domainName: String, isInternal: Bool = false, upstreams: [DNSUpstream] = [],
        containerUpstreams: [DNSUpstream] = [], store: JSONValue? = nil
    ) {
        self.network = network
        self.containerID = containerID
        self.ifName = ifName
        self.names = names
        self.addresses = addresses
        self.gateways = gateways
        self.domainName = domainName
        self.isInternal = isInternal
        self.upstreams = upstreams
        self.containerUpstreams = containerUpstreams
        self.store = store
    }

    /// What another host's server may use of this record: names and addresses only (it listens
    /// on its own gateways and forwards to its own upstreams).
    public var forOtherHosts: NameRecord {
        var copy = self
        copy.gateways = []
        copy.upstreams = []
        copy.containerUpstreams = []
        copy.store = nil
        return copy
    }

    /// A name a container may be registered under: dot-separated labels of letters, digits,
    /// `-` and `_` (Docker's container names allow `_`), each 1–63 bytes, 253 in all.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.utf8.count)
                && label.utf8.allSatisfy {
                    (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)
                        || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
                }
        }
    }

    public var json: JSONValue {
        .object([
            "network": .string(network), "containerID": .string(containerID), "ifName": .string(ifName),
            "names": .array(names.map { .string($0) }),
            "addresses": .array(addresses.map { .string($0.description) }),
            "gateways": .array(gateways.map { .string($0.description) }),
            "domainName": .string(domainName), "internal": .bool(isInternal),
            "upstreams": .array(upstreams.map { .string($0.description) }),
            "containerUpstreams": .array(containerUpstreams.map { .string($0.description) }),
            "store": store ?? .null,
        ])
    }

    public init(parsing bytes: [UInt8]) throws(NameServiceError) {
        guard let value = try? JSONValue(parsing: bytes), let object = value.objectValue else {
            throw NameServiceError("record is not a JSON object")
        }
        func text(_ key: String) throws(NameServiceError) -> String {
            guard let text = object[key]?.stringValue else { throw NameServiceError("record has no \(key)") }
            return text
        }
        func list(_ key: String) throws(NameServiceError) -> [String] {
            guard let items = object[key]?.arrayValue else { throw NameServiceError("record has no \(key) list") }
            var texts: [String] = []
            for item in items {
                guard let text = item.stringValue else { throw NameServiceError("record: \(key) holds a non-string") }
                texts.append(text)
            }
            return texts
        }
        func addresses(_ key: String) throws(NameServiceError) -> [IPAddress] {
            var parsed: [IPAddress] = []
            for text in try list(key) {
                guard let address = IPAddress(text) else { throw NameServiceError("record: bad address \(text)") }
                parsed.append(address)
            }
            return parsed
        }
        func upstreams(_ key: String) throws(NameServiceError) -> [DNSUpstream] {
            var parsed: [DNSUpstream] = []
            for text in (try? list(key)) ?? [] {
                guard let upstream = DNSUpstream(text) else { throw NameServiceError("record: bad upstream \(text)") }
                parsed.append(upstream)
            }
            return parsed
        }
        self.init(
            network: try text("network"), containerID: try text("containerID"), ifName: try text("ifName"),
            names: try list("names").filter(Self.isValidName), addresses: try addresses("addresses"),
            gateways: try addresses("gateways"), domainName: try text("domainName"),
            isInternal: object["internal"]?.boolValue ?? false, upstreams: try upstreams("upstreams"),
            containerUpstreams: try upstreams("containerUpstreams"),
            store: object["store"].flatMap { $0 == .null ? nil : $0 })
    }
}

public struct NameServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The records directory: one subdirectory per network holding one file per attachment, and
/// the server's control files beside them (dot-names, which no network name can take).
///
/// ```
/// <directory>/.lock              flock held by writers (plugin processes) around each change
/// <directory>/.pier-dns.pid      the server's pid; the server flocks it for its whole life
/// <directory>/.pier-dns.sock     the server's control socket ("reload <network>")
/// <directory>/.pier-dns.log      the server's diagnostics
/// <directory>/<network>/<containerID>:<ifName>   one NameRecord (JSON), replaced atomically
/// ```
///
/// Writers hold the lock, so a network directory is never removed under a concurrent ADD;
/// files are replaced by rename, so the server, which reads without the lock, never sees a
/// half-written record.
public struct NameRecordStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var lockPath: String { directory + "/.lock" }
    public var pidPath: String { directory + "/.pier-dns.pid" }
    public var socketPath: String { directory + "/.pier-dns.sock" }
    public var logPath: String { directory + "/.pier-dns.log" }

    public func networkDirectory(_ network: String) -> String { directory + "/" + network }

    /// ':' is in neither a container ID nor an interface name, so the pair maps to one name.
    public static func fileName(containerID: String, ifName: String) -> String { containerID + ":" + ifName }

    /// Runs `body` holding the writers' lock (creating the directory first).
    public func withLock<T>(_ body: () throws -> T) throws -> T {
        do {
            try FileSystem.makeDirectories(directory)
            let lock = try FileLock(path: lockPath)
            return try lock.withLock(body)
        } catch let error as FileSystemError {
            throw NameServiceError("records directory \(directory): \(error)")
        }
    }

    /// Writes (or replaces) a record. Call inside `withLock`.
    public func write(_ record: NameRecord) throws {
        let networkDirectory = networkDirectory(record.network)
        try FileSystem.makeDirectories(networkDirectory)
        // Lost records die with the machine's /run; no fsync on the hot path.
        try FileSystem.replace(
            directory: networkDirectory,
            name: Self.fileName(containerID: record.containerID, ifName: record.ifName),
            contents: record.json.encodedBytes, durable: false)
    }

    /// Removes a record, and its network's directory when it was the last; true if it existed.
    /// Call inside `withLock`.
    @discardableResult
    public func remove(network: String, containerID: String, ifName: String) throws -> Bool {
        let networkDirectory = networkDirectory(network)
        let existed = try FileSystem.remove(
            networkDirectory + "/" + Self.fileName(containerID: containerID, ifName: ifName))
        // Temporaries of writers that died (we hold the lock, so no writer is live) would keep
        // the directory forever.
        FileSystem.removeStrayTemporaries(in: networkDirectory)
        if let names = try FileSystem.list(networkDirectory), names.isEmpty { rmdir(networkDirectory) }
        return existed
    }

    public func record(network: String, containerID: String, ifName: String) throws -> NameRecord? {
        let path = networkDirectory(network) + "/" + Self.fileName(containerID: containerID, ifName: ifName)
        guard let bytes = try FileSystem.read(path) else { return nil }
        return try NameRecord(parsing: bytes)
    }

    /// Every record of `network`; a file that cannot be read or parsed is reported to `skipped`.
    public func records(network: String, skipped: (String, any Error) -> Void = { _, _ in }) -> [NameRecord] {
        let networkDirectory = networkDirectory(network)
        var records: [NameRecord] = []
        let names: [String]
        do {
            names = try FileSystem.list(networkDirectory) ?? []
        } catch {
            skipped(networkDirectory, error)
            return []
        }
        for name in names.sorted()
        where !name.hasPrefix(".") && !name.containsText(FileSystem.siblingTemporaryMarker) {
            let path = networkDirectory + "/" + name
            do {
                // Gone between the listing and the read: removed by a DEL, not an error.
                guard let bytes = try FileSystem.read(path) else { continue }
                let record = try NameRecord(parsing: bytes)
                if record.network == network { records.append(record) }
            } catch {
                skipped(path, error)
            }
        }
        return records
    }

    /// Every network that has a directory.
    public func networks() -> [String] {
        ((try? FileSystem.list(directory)) ?? []).filter {
            !$0.hasPrefix(".") && FileSystem.isDirectory(directory + "/" + $0)
        }
        .sorted()
    }

    public func allRecords(skipped: (String, any Error) -> Void = { _, _ in }) -> [NameRecord] {
        networks().flatMap { records(network: $0, skipped: skipped) }
    }

    /// Modification times of the directory and every network directory: changes whenever a
    /// record is added, replaced or removed, so the server can notice edits it was not told of.
    public func changeSignature() -> [String: Int] {
        var signature: [String: Int] = [:]
        for path in [directory] + networks().map(networkDirectory) {
            var info = stat()
            if stat(path, &info) == 0 {
                signature[path] = info.st_mtim.tv_sec * 1_000_000_000 + info.st_mtim.tv_nsec
            }
        }
        return signature
    }
}
