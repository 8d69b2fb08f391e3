import CNI
import FoundationEssentials

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
}

/// libcni's on-disk cache of ADD results: `<dir>/results/<network>-<containerID>-<ifname>`, directory
/// 0700, files 0600, so that DEL, CHECK and GC have the result and arguments ADD used, and so that
/// libcni-based tools (cnitool, containerd) and `pier` can read each other's entries.
public struct ResultCache: Sendable {
    public let directory: String

    public init(cacheDirectory: String) {
        self.directory = cacheDirectory + "/results"
    }

    public func path(network: String, containerID: String, ifName: String) -> String {
        "\(directory)/\(network)-\(containerID)-\(ifName)"
    }

    public func write(
        network: String, config: [UInt8], request: AttachmentRequest, result: JSONValue
    ) throws(RuntimeError) {
        try Files.makeDirectories(directory, mode: 0o700)
        var object = JSONObject()
        object["kind"] = .string("cniCacheV1")
        object["containerId"] = .string(request.containerID)
        object["config"] = .string(Data(config).base64EncodedString())
        object["ifName"] = .string(request.ifName)
        object["networkName"] = .string(network)
        // Go's `omitempty` drops these when empty; keep the same shape.
        if !request.netns.isEmpty { object["netns"] = .string(request.netns) }
        if !request.cniArgs.isEmpty {
            object["cniArgs"] = .array(request.cniArgs.map { .array([.string($0.0), .string($0.1)]) })
        }
        if !request.capabilityArgs.isEmpty { object["capabilityArgs"] = .object(request.capabilityArgs) }
        object["result"] = result
        let path = path(network: network, containerID: request.containerID, ifName: request.ifName)
        try Files.writeAtomically(JSONValue.object(object).encodedBytes, to: path, mode: 0o600)
    }

    public func read(network: String, containerID: String, ifName: String) -> CachedAttachment? {
        read(path: path(network: network, containerID: containerID, ifName: ifName))
    }

    public func read(path: String) -> CachedAttachment? {
        guard let bytes = try? Files.read(path), let value = try? JSONValue(parsing: bytes),
            let object = value.objectValue, object["kind"]?.stringValue == "cniCacheV1",
            let network = object["networkName"]?.stringValue, let containerID = object["containerId"]?.stringValue,
            let ifName = object["ifName"]?.stringValue
        else { return nil }
        let config = object["config"]?.stringValue.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
        var cniArgs: [(String, String)] = []
        for pair in object["cniArgs"]?.arrayValue ?? [] {
            guard let items = pair.arrayValue, items.count == 2, let key = items[0].stringValue,
                let value = items[1].stringValue
            else { continue }
            cniArgs.append((key, value))
        }
        let request = AttachmentRequest(
            containerID: containerID, netns: object["netns"]?.stringValue ?? "", ifName: ifName, cniArgs: cniArgs,
            capabilityArgs: object["capabilityArgs"]?.objectValue ?? [:])
        let result = object["result"].flatMap { $0 == .null ? nil : $0 }
        return CachedAttachment(networkName: network, request: request, config: config, result: result, path: path)
    }

    public func remove(network: String, containerID: String, ifName: String) {
        Files.remove(path(network: network, containerID: containerID, ifName: ifName))
    }

    /// Every readable entry; files that are not cache entries (or half-written temporaries) are skipped.
    public func all() -> [CachedAttachment] {
        Files.list(directory).filter { !$0.contains(".tmp-") }.compactMap { read(path: directory + "/" + $0) }
    }
}
