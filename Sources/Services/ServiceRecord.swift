import FoundationEssentials
import IPAddressing

/// One service on one network, as `pier` keeps it: `<root>/services/<network>/<name>.json`.
/// Written under the services lock before the kernel is changed, so what the kernel holds can
/// always be rebuilt from the records (`pier firewall reload`, a restarted agent).
public struct ServiceRecord: Codable, Sendable, Equatable {
    /// How clients reach the members.
    public enum EndpointMode: String, Codable, Sendable, CaseIterable {
        /// A virtual IP, load-balanced by the kernel over the active members.
        case vip
        /// No VIP: the name resolves to the active members' addresses, rotating.
        case dnsrr
    }

    /// How a new connection picks its member.
    public enum Affinity: String, Codable, Sendable, CaseIterable {
        case none
        /// One client address, one member, while the member list stays the same.
        case clientIP = "client-ip"
    }

    public var name: String
    public var network: String
    public var endpointMode: EndpointMode
    public var affinity: Affinity
    /// One address per family of the network (none for `dnsrr`), leased from its IPAM.
    public var vips: [String]
    /// Ports published on every host of the network (the routing mesh).
    public var published: [PublishedServicePort]
    public var members: [ServiceMember]

    public init(
        name: String, network: String, endpointMode: EndpointMode = .vip, affinity: Affinity = .none,
        vips: [String] = [], published: [PublishedServicePort] = [], members: [ServiceMember] = []
    ) {
        self.name = name
        self.network = network
        self.endpointMode = endpointMode
        self.affinity = affinity
        self.vips = vips
        self.published = published
        self.members = members
    }

    /// The owner tag of the service's nftables elements, unique per host.
    public var owner: String { network + "/" + name }

    public var vipAddresses: [IPAddress] { vips.compactMap(IPAddress.init) }

    /// The addresses new connections may go to: members whose container runs.
    public var activeAddresses: [IPAddress] {
        members.filter(\.active).flatMap(\.addresses).compactMap(IPAddress.init)
    }

    /// A service name is one DNS label: clients look it up (and `tasks.<name>`).
    public static func validateName(_ name: String) throws(ServiceError) {
        let bytes = Array(name.utf8)
        let valid =
            (1...63).contains(bytes.count) && bytes.first != UInt8(ascii: "-") && bytes.last != UInt8(ascii: "-")
            && bytes.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == UInt8(ascii: "-")
            }
        guard valid else {
            throw ServiceError(
                "invalid service name \"\(name)\": a service name is one DNS label (1-63 letters, digits or '-', "
                    + "not starting or ending with '-')")
        }
    }
}

/// One container in a service: the attachment that joined (its container ID and interface on
/// the service's network) and where it runs.
public struct ServiceMember: Codable, Sendable, Equatable {
    public var containerID: String
    /// The container's name, for `service inspect`.
    public var container: String
    public var ifName: String
    /// The host the container runs on (its hostname), so other hosts can tell whose it is.
    public var host: String
    public var addresses: [String]
    /// Whether its process runs: only active members get new connections and name answers.
    public var active: Bool

    public init(
        containerID: String, container: String, ifName: String, host: String, addresses: [String], active: Bool
    ) {
        self.containerID = containerID
        self.container = container
        self.ifName = ifName
        self.host = host
        self.addresses = addresses
        self.active = active
    }
}

/// A port of the routing mesh: `hostPort` on every host reaches `targetPort` of some member.
public struct PublishedServicePort: Codable, Sendable, Equatable, Hashable {
    public var hostPort: UInt16
    public var targetPort: UInt16
    public var `protocol`: String

    public init(hostPort: UInt16, targetPort: UInt16, protocol: String) {
        self.hostPort = hostPort
        self.targetPort = targetPort
        self.protocol = `protocol`
    }
}

public struct ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
