import IPAddressing
import NetNS
import PierState

/// Turns the CLI's FROM and TO[:PORT] into namespaces and addresses: container names (or
/// netns names and paths), or IP addresses, which are looked up in the result cache.
public struct TraceTargets {
    public let paths: StatePaths
    public let netnsDirectory: String
    /// Maps a container name to its netns path (the runtime's records); nil: netns lookup only.
    public var resolveContainer: ((String) -> String?)?

    public init(
        paths: StatePaths, netnsDirectory: String = DefaultPaths.netnsDirectory,
        resolveContainer: ((String) -> String?)? = nil
    ) {
        self.paths = paths
        self.netnsDirectory = netnsDirectory
        self.resolveContainer = resolveContainer
    }

    /// Splits `host:port`, `[v6]:port`, a bare IPv6 address, or a name.
    public static func split(_ text: String) -> (String, UInt16?) {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            return (host, rest.hasPrefix(":") ? UInt16(rest.dropFirst()) : nil)
        }
        if text.filter({ $0 == ":" }).count == 1, let colon = text.lastIndex(of: ":"),
            let port = UInt16(text[text.index(after: colon)...])
        {
            return (String(text[..<colon]), port)
        }
        return (text, nil)
    }

    /// The namespace of FROM: an address is found in the result cache; a name through the
    /// runtime, then the netns directory.
    public func sourceNamespace(_ reference: String) throws(DiagnosticsError) -> String {
        if let address = IPAddress(reference) {
            guard let path = namespace(holding: address) else {
                throw DiagnosticsError("no cached attachment holds \(address): name the container or use --from-netns")
            }
            return path
        }
        return resolveContainer?(reference) ?? NamespaceLocator.path(for: reference, netnsDirectory: netnsDirectory)
    }

    /// TO: an address as is; a container name becomes its first global address (IPv4 first)
    /// and its namespace.
    public func destination(_ reference: String) throws(DiagnosticsError) -> (IPAddress, String?) {
        if let address = IPAddress(reference) { return (address, namespace(holding: address)) }
        let path = resolveContainer?(reference) ?? NamespaceLocator.path(for: reference, netnsDirectory: netnsDirectory)
        let snapshot = try snapshot(of: try openNamespace(path), includeFDB: false)
        var candidates = snapshot.addresses.map(\.prefix.address).filter { !$0.isLoopback && !$0.isLinkLocal }
        if candidates.isEmpty {
            // Its interface is gone: trace to the address the ADD gave it, so the walk shows where it breaks.
            candidates = ResultCacheReader(cacheDirectory: paths.cacheDirectory).all().filter { $0.netns == path }
                .flatMap(\.addresses).compactMap { IPPrefix($0)?.address }
        }
        guard let address = candidates.first(where: { $0.family == .v4 }) ?? candidates.first else {
            throw DiagnosticsError("\(reference) (\(path)) has no address to trace to")
        }
        return (address, path)
    }

    func namespace(holding address: IPAddress) -> String? {
        ResultCacheReader(cacheDirectory: paths.cacheDirectory).all().first {
            !$0.netns.isEmpty && $0.addresses.contains { IPPrefix($0)?.address == address }
        }?.netns
    }
}
