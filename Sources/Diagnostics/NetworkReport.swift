import CNI

/// `pier network inspect NAME`: a network's config, kernel devices, leases, attachments and
/// nftables state. Keys are only ever added (bump `schemaVersion` for anything else).
public struct NetworkReport: Sendable, Equatable, Codable {
    public var schemaVersion: Int = 1
    public var name: String
    public var configFile: String?
    public var cniVersion: String?
    public var plugins: [String]
    /// The conflist as written (from the config file, else the cached copy).
    public var config: JSONValue?
    public var subnets: [String]
    public var gateways: [String]
    public var bridge: BridgeReport?
    public var vxlan: [VxlanReport]
    public var leases: [LeaseReport]
    public var attachments: [NetworkAttachmentReport]
    public var masquerade: MasqueradeReport
    public var isolation: IsolationReport
    /// Every `inet pier` / `bridge pier` element tagged with this network or one of its attachments.
    public var elements: [PierElement]
}

public struct BridgeReport: Sendable, Equatable, Codable {
    public var name: String
    public var exists: Bool
    public var mac: String?
    public var mtu: UInt32?
    public var state: String?
    public var addresses: [String]
    public var ports: [String]
    public var neighbors: [NeighborReport]
}

public struct VxlanReport: Sendable, Equatable, Codable {
    public var name: String
    public var vni: UInt32?
    public var local: String?
    public var port: UInt16?
    public var learning: Bool?
    public var proxy: Bool?
    public var state: String
    public var fdb: [FDBReport]
    public var neighbors: [NeighborReport]
}

public struct FDBReport: Sendable, Equatable, Codable {
    public var mac: String
    public var destination: String?
    public var state: String
}

public struct LeaseReport: Sendable, Equatable, Codable {
    public var address: String
    public var containerId: String
    public var ifName: String
    /// Whether the holder is a live attachment (false: a stale lease `pier gc` releases).
    public var live: Bool
}

public struct NetworkAttachmentReport: Sendable, Equatable, Codable {
    public var containerId: String
    public var ifName: String
    public var netns: String?
    public var hostVeth: String?
    public var addresses: [String]
    public var live: Bool
    /// A live bridge attachment whose host veth is gone: the container's interface was deleted.
    public var interfaceMissing: Bool = false
}

public struct MasqueradeReport: Sendable, Equatable, Codable {
    /// `ipMasq` in the config.
    public var configured: Bool
    /// Subnets present in `masq_v4` / `masq_v6` under this network's tag.
    public var subnets: [String]
}

public struct IsolationReport: Sendable, Equatable, Codable {
    /// `isolation` in the config (Pier's default: true).
    public var configured: Bool
    /// The bridge is in `isolated_bridges`.
    public var isolatedBridge: Bool
    /// The bridge's `bridge . bridge` pair is in `same_bridge`.
    public var sameBridge: Bool
}
