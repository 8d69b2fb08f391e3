/// `pier inspect --json`: one container's network view. Documented in docs/inspect-json.md;
/// keys are only ever added (bump `schemaVersion` for anything else).
public struct ContainerReport: Sendable, Equatable, Codable {
    public var schemaVersion: Int = 1
    public var container: ContainerIdentity?
    public var netns: String
    public var interfaces: [InterfaceReport]
}

public struct ContainerIdentity: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    /// The runtime's status (created, running, exited, …), when it gave one.
    public var status: String?

    public init(id: String, name: String, status: String? = nil) {
        self.id = id
        self.name = name
        self.status = status
    }
}

public struct InterfaceReport: Sendable, Equatable, Codable {
    public var name: String
    public var index: Int32
    public var kind: String?
    public var mac: String?
    public var mtu: UInt32?
    /// Operational state: up, down, lowerlayerdown, unknown, …
    public var state: String
    /// Administratively up (IFF_UP).
    public var adminUp: Bool
    public var addresses: [String]
    public var routes: [RouteReport]
    public var neighbors: [NeighborReport]
    public var hostPeer: PeerReport?
    /// The network of the attachment (same as `attachment.network`; the runtime's short form).
    public var network: String?
    public var attachment: AttachmentReport?
    public var origin: OriginReport?
    public var publishedPorts: [PublishedPortRecord]
}

public struct RouteReport: Sendable, Equatable, Codable {
    public var destination: String
    public var gateway: String?
    public var device: String?
    public var source: String?
    public var metric: UInt32?
    public var scope: String
    public var table: UInt32
}

public struct NeighborReport: Sendable, Equatable, Codable {
    public var address: String
    public var mac: String?
    public var device: String?
    public var state: String
}

/// The host end of a container's veth.
public struct PeerReport: Sendable, Equatable, Codable {
    public var name: String
    public var index: Int32
    public var mac: String?
    public var state: String
    public var adminUp: Bool
    public var alias: String?
    public var bridge: String?
    public var hairpin: Bool?
    public var isolated: Bool?
}

public struct AttachmentReport: Sendable, Equatable, Codable {
    public var network: String
    public var containerId: String
    public var ifName: String
    /// The owner tag on this attachment's nftables elements.
    public var ownerTag: String
}

/// Which network config and plugins made the interface (from the libcni result cache).
public struct OriginReport: Sendable, Equatable, Codable {
    public var network: String
    public var cniVersion: String?
    public var plugins: [String]
    public var configFile: String?
    public var cacheFile: String?
    public var resultAddresses: [String]
}
