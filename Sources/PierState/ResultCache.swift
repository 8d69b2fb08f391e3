import CNI

/// One entry of libcni's result cache (`kind: cniCacheV1`): what ADD ran with and returned, so
/// DEL, CHECK and GC can repeat it, and so `pier` and libcni-based tools (cnitool, containerd)
/// read each other's entries. The shape is libcni's `cachedInfo`, empty optional fields left
/// out as Go's `omitempty` leaves them out.
public struct ResultCacheEntry: Sendable {
    public static let kind = "cniCacheV1"

    public var networkName: String
    public var containerID: String
    public var ifName: String
    /// Empty when the runtime gave none.
    public var netns: String
    /// `CNI_ARGS` pairs, in order.
    public var cniArgs: [(String, String)]
    public var capabilityArgs: JSONObject
    /// The conflist bytes the ADD ran with (empty when the entry holds none or it is not base64).
    public var config: [UInt8]
    public var result: JSONValue?

    public init(
        networkName: String, containerID: String, ifName: String, netns: String = "",
        cniArgs: [(String, String)] = [], capabilityArgs: JSONObject = [:], config: [UInt8], result: JSONValue?
    ) {
        self.networkName = networkName
        self.containerID = containerID
        self.ifName = ifName
        self.netns = netns
        self.cniArgs = cniArgs
        self.capabilityArgs = capabilityArgs
        self.config = config
        self.result = result
    }

    public func encoded() -> [UInt8] {
        var object = JSONObject()
        object["kind"] = .string(Self.kind)
        object["containerId"] = .string(containerID)
        object["config"] = .string(Base64.encode(config))
        object["ifName"] = .string(ifName)
        object["networkName"] = .string(networkName)
        if !netns.isEmpty { object["netns"] = .string(netns) }
        if !cniArgs.isEmpty { object["cniArgs"] = .array(cniArgs.map { .array([.string($0.0), .string($0.1)]) }) }
        if !capabilityArgs.isEmpty { object["capabilityArgs"] = .object(capabilityArgs) }
        if let result { object["result"] = result }
        return JSONValue.object(object).encodedBytes
    }

    /// nil for anything that is not a cniCacheV1 entry naming its attachment.
    public init?(decoding bytes: [UInt8]) {
        guard let value = try? JSONValue(parsing: bytes), let object = value.objectValue,
            object["kind"]?.stringValue == Self.kind, let network = object["networkName"]?.stringValue,
            let containerID = object["containerId"]?.stringValue, let ifName = object["ifName"]?.stringValue
        else { return nil }
        var cniArgs: [(String, String)] = []
        for pair in object["cniArgs"]?.arrayValue ?? [] {
            guard let items = pair.arrayValue, items.count == 2, let key = items[0].stringValue,
                let value = items[1].stringValue
            else { continue }
            cniArgs.append((key, value))
        }
        self.init(
            networkName: network, containerID: containerID, ifName: ifName, netns: object["netns"]?.stringValue ?? "",
            cniArgs: cniArgs, capabilityArgs: object["capabilityArgs"]?.objectValue ?? [:],
            config: object["config"]?.stringValue.flatMap(Base64.decode) ?? [],
            result: object["result"].flatMap { $0 == .null ? nil : $0 })
    }
}

extension ResultCacheEntry: Equatable {
    public static func == (lhs: ResultCacheEntry, rhs: ResultCacheEntry) -> Bool {
        lhs.networkName == rhs.networkName && lhs.containerID == rhs.containerID && lhs.ifName == rhs.ifName
            && lhs.netns == rhs.netns && lhs.cniArgs.map { [$0.0, $0.1] } == rhs.cniArgs.map { [$0.0, $0.1] }
            && lhs.capabilityArgs == rhs.capabilityArgs && lhs.config == rhs.config && lhs.result == rhs.result
    }
}

/// libcni's result cache directory, `<cacheDirectory>/results/<network>-<containerID>-<ifname>`
/// (directory 0700, files 0600).
public struct ResultCacheDirectory: Sendable {
    /// The `results` directory itself.
    public let directory: String

    public init(cacheDirectory: String) { directory = cacheDirectory + "/results" }

    public static let directoryMode: UInt32 = 0o700
    public static let fileMode: UInt32 = 0o600

    public func path(network: String, containerID: String, ifName: String) -> String {
        "\(directory)/\(network)-\(containerID)-\(ifName)"
    }

    /// False for the temporaries of a write in progress (or of a writer that died).
    public static func isEntryName(_ name: String) -> Bool {
        !FileSystem.isSiblingTemporary(name) && !name.hasPrefix(FileSystem.temporaryPrefix)
    }

    public func read(path: String) -> ResultCacheEntry? {
        guard let bytes = (try? FileSystem.read(path)) ?? nil else { return nil }
        return ResultCacheEntry(decoding: bytes)
    }

    public func read(network: String, containerID: String, ifName: String) -> ResultCacheEntry? {
        read(path: path(network: network, containerID: containerID, ifName: ifName))
    }

    /// Every readable entry with its path, sorted by path; other files are skipped.
    public func all() -> [(path: String, entry: ResultCacheEntry)] {
        ((try? FileSystem.list(directory)) ?? []).filter(Self.isEntryName).sorted().compactMap { name in
            let path = directory + "/" + name
            return read(path: path).map { (path, $0) }
        }
    }
}
