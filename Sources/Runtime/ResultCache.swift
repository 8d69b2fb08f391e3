import CNI
import Glibc
import PierState

/// One attachment as a runtime describes it to libcni (`RuntimeConf`).
public struct AttachmentRequest: Sendable, Equatable {
    public var containerID: String
    public var netns: String
    public var ifName: String
    /// `CNI_ARGS` pairs, in order.
    public var cniArgs: [(String, String)]
    public var capabilityArgs: JSONObject

    public init(
        containerID: String, netns: String, ifName: String, cniArgs: [(String, String)] = [],
        capabilityArgs: JSONObject = [:]
    ) {
        self.containerID = containerID
        self.netns = netns
        self.ifName = ifName
        self.cniArgs = cniArgs
        self.capabilityArgs = capabilityArgs
    }

    public static func == (lhs: AttachmentRequest, rhs: AttachmentRequest) -> Bool {
        lhs.containerID == rhs.containerID && lhs.netns == rhs.netns && lhs.ifName == rhs.ifName
            && lhs.cniArgs.map { [$0.0, $0.1] } == rhs.cniArgs.map { [$0.0, $0.1] }
            && lhs.capabilityArgs == rhs.capabilityArgs
    }

    /// `K1=V1;K2=V2`, as `CNI_ARGS` carries them.
    public var cniArgsText: String { cniArgs.map { "\($0.0)=\($0.1)" }.joined(separator: ";") }

    /// Parses `K1=V1;K2=V2`; each pair must split into exactly two parts, as Go's `LoadArgs` demands.
    public static func parseArgs(_ text: String) throws(RuntimeError) -> [(String, String)] {
        var pairs: [(String, String)] = []
        for item in text.split(separator: ";") where !item.isEmpty {
            let parts = item.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw RuntimeError.invalidArgument("invalid CNI argument \"\(item)\": expected KEY=VALUE")
            }
            pairs.append((String(parts[0]), String(parts[1])))
        }
        return pairs
    }
}

/// An entry of libcni's result cache, `kind: cniCacheV1`.
public struct CachedAttachment: Sendable {
    public var networkName: String
    public var request: AttachmentRequest
    /// The conflist bytes the ADD ran with.
    public var config: [UInt8]
    public var result: JSONValue?
    public var path: String

    init(_ entry: ResultCacheEntry, path: String) {
        networkName = entry.networkName
        request = AttachmentRequest(
            containerID: entry.containerID, netns: entry.netns, ifName: entry.ifName, cniArgs: entry.cniArgs,
            capabilityArgs: entry.capabilityArgs)
        config = entry.config
        result = entry.result
        self.path = path
    }
}

/// libcni's on-disk cache of ADD results (`ResultCacheDirectory`, whose format diagnostics read
/// too), so that DEL, CHECK and GC have the result and arguments ADD used, and so that
/// libcni-based tools (cnitool, containerd) and `pier` can read each other's entries.
public struct ResultCache: Sendable {
    let layout: ResultCacheDirectory
    public var directory: String { layout.directory }

    public init(cacheDirectory: String) {
        layout = ResultCacheDirectory(cacheDirectory: cacheDirectory)
    }

    public func path(network: String, containerID: String, ifName: String) -> String {
        layout.path(network: network, containerID: containerID, ifName: ifName)
    }

    public func write(
        network: String, config: [UInt8], request: AttachmentRequest, result: JSONValue
    ) throws(RuntimeError) {
        try Files.makeDirectories(directory, mode: mode_t(ResultCacheDirectory.directoryMode))
        let entry = ResultCacheEntry(
            networkName: network, containerID: request.containerID, ifName: request.ifName, netns: request.netns,
            cniArgs: request.cniArgs, capabilityArgs: request.capabilityArgs, config: config, result: result)
        let path = path(network: network, containerID: request.containerID, ifName: request.ifName)
        // Not fsynced, as libcni does not: an fsync costs every ADD a journal commit (0.4 ms idle,
        // far more on a busy disk), and an entry a power loss tears is read as unusable, which
        // DEL and GC already handle (libcni's rule), while the container it describes is gone.
        try Files.writeAtomically(
            entry.encoded(), to: path, mode: mode_t(ResultCacheDirectory.fileMode), durable: false)
    }

    public func read(network: String, containerID: String, ifName: String) -> CachedAttachment? {
        read(path: path(network: network, containerID: containerID, ifName: ifName))
    }

    public func read(path: String) -> CachedAttachment? {
        layout.read(path: path).map { CachedAttachment($0, path: path) }
    }

    public func remove(network: String, containerID: String, ifName: String) {
        Files.remove(path(network: network, containerID: containerID, ifName: ifName))
    }

    /// Every readable entry; files that are not cache entries (or half-written temporaries) are skipped.
    public func all() -> [CachedAttachment] {
        layout.all().map { CachedAttachment($0.entry, path: $0.path) }
    }
}
