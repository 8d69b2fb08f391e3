import PierState

/// One address lease of host-local's on-disk layout (`<dataDir>/<network>/<ip>`).
public struct Lease: Sendable, Equatable, Codable {
    public var address: String
    public var containerID: String
    /// Empty for legacy leases that hold only the container ID.
    public var ifName: String
    public var path: String
}

/// Reads a network's lease directory through `LeaseDirectory`, which parses lease files
/// exactly as the IPAM lease store does (see plugins/ipam/README.md, "On-disk layout").
public struct LeaseReader: Sendable {
    public let dataDirectory: String

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    public func directory(network: String) -> String {
        LeaseDirectory(dataDirectory: dataDirectory).directory(network: network)
    }

    /// Networks that have a lease directory here.
    public func networks() -> [String] { LeaseDirectory(dataDirectory: dataDirectory).networks() }

    public func leases(network: String) -> [Lease] {
        LeaseDirectory(dataDirectory: dataDirectory).leases(network: network).map {
            Lease(
                address: $0.address.description, containerID: $0.owner.containerID, ifName: $0.owner.ifname ?? "",
                path: $0.path)
        }
    }
}
