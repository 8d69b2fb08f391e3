import CNI
import ClusterStore
import IPAM
import Overlay
import PierState

/// What services need to know of a network, read from its conflist: where the VIP lease comes
/// from, the bridge that answers for the VIP, and where the network's names are kept.
public struct ServiceNetwork: Sendable {
    public var name: String
    public var cniVersion: String
    /// The plugin config that carries `ipam` (bridge, macvlan, vxlan-overlay …): the VIP is
    /// leased from that IPAM, so it never collides with a container's address.
    public var ipamOwner: JSONObject?
    /// The bridge of a `bridge` network: the VIP is put on it so the host answers for it on
    /// the containers' segment.
    public var bridge: String?
    /// The records directory of the network's `names` plugin; nil without a name service.
    public var namesDirectory: String?
    /// The cluster store of an overlay network: its services are shared with its other hosts.
    public var store: ClusterStoreConfig?
    /// The `store` object as the config gives it (the VIP lease's IPAM needs it).
    var storeObject: JSONObject?

    public init(_ list: NetworkConfigList) {
        name = list.name
        cniVersion = list.cniVersion
        for plugin in list.plugins {
            if ipamOwner == nil, plugin.raw["ipam"]?.objectValue != nil { ipamOwner = plugin.raw }
            if plugin.type == "bridge" { bridge = plugin.raw["bridge"]?.stringValue ?? "cni0" }
            if plugin.type == "vxlan-overlay" {
                if let vni = plugin.raw["vni"]?.intValue, let value = UInt32(exactly: vni) {
                    bridge = OverlayDevices.bridgeName(vni: value)
                }
                let storeObject = plugin.raw["store"]?.objectValue ?? ["type": .string("file")]
                self.storeObject = storeObject
                store = try? ClusterStoreConfig(
                    JSONReader(storeObject, code: .invalidNetworkConfig, context: "vxlan-overlay store"))
            }
            if plugin.type == "names" {
                namesDirectory = plugin.raw["dataDir"]?.stringValue ?? DefaultPaths.nameServiceDirectory
            }
        }
    }

    /// What `pier agent` knows of a network without its conflist.
    public init(name: String, bridge: String?, namesDirectory: String?, store: ClusterStoreConfig?) {
        self.name = name
        self.cniVersion = "1.1.0"
        self.bridge = bridge
        self.namesDirectory = namesDirectory
        self.store = store
    }

    /// The pseudo-host that owns the VIP leases of an overlay network's services: a VIP outlives
    /// the host that leased it (the last member anywhere releases it), and cluster leases are
    /// released by their host only.
    public static let vipLeaseHost = "pier-services"

    /// A one-plugin conflist that runs the network's IPAM alone: the VIP's lease is an
    /// attachment of the network (`service-<S>`, interface `vip`) with no interface, so the
    /// lease, its cache entry and GC behave like any container's.
    public func vipLeaseList() throws(ServiceError) -> NetworkConfigList {
        try leaseList(host: Self.vipLeaseHost)
    }

    /// The IPAM-only conflist with `host` as the cluster lease holder (overlay networks).
    func leaseList(host: String) throws(ServiceError) -> NetworkConfigList {
        guard let owner = ipamOwner, let ipam = owner["ipam"]?.objectValue, let type = ipam["type"]?.stringValue
        else { throw ServiceError("network \(name) has no IPAM to lease a service VIP from") }
        var leaseIPAM = ipam
        if var storeObject = ipam["store"]?.objectValue ?? storeObject {
            storeObject["host"] = .string(host)
            leaseIPAM["store"] = .object(storeObject)
        }
        let plugin: JSONObject = [
            "type": .string(type), "ipam": .object(leaseIPAM), "capabilities": .object(["ips": .bool(true)]),
        ]
        let list: JSONObject = [
            "cniVersion": .string(cniVersion), "name": .string(name), "plugins": .array([.object(plugin)]),
        ]
        do { return try NetworkConfigList(bytes: JSONValue.object(list).encodedBytes) } catch {
            throw ServiceError("network \(name): building the lease config: \(error)")
        }
    }

    /// The network's IPAM settings with `host` as the cluster lease holder, for leases taken
    /// in-process (overlay networks: the VIP, the mesh source), with no cache entry on any host.
    func ipamSettings(host: String, requested: [String] = []) throws(ServiceError) -> IPAMSettings? {
        guard let list = try? leaseList(host: host), let plugin = list.plugins.first else { return nil }
        var config = plugin.raw
        config["name"] = .string(name)
        config["cniVersion"] = .string(cniVersion)
        do { return try IPAMSettings(config: config, environmentIPs: requested) } catch {
            throw ServiceError("network \(name): IPAM settings: \(error)")
        }
    }

    /// An overlay service's VIP, leased in the cluster under `vipLeaseHost`: any host can
    /// release it, and no host's cache or GC holds it.
    public func leaseClusterVIP(service: String, requested: String?) throws(ServiceError) -> [String] {
        guard let settings = try ipamSettings(host: Self.vipLeaseHost, requested: requested.map { [$0] } ?? [])
        else { throw ServiceError("network \(name) has no IPAM to lease a service VIP from") }
        let identity = Self.vipAttachment(service: service)
        do {
            let result = try AddressManager(config: settings).add(
                LeaseOwner(containerID: identity.containerID, ifname: identity.ifName))
            return result.ips.map { $0.address.address.description }
        } catch {
            throw ServiceError("\(error)")
        }
    }

    public func releaseClusterVIP(service: String) {
        guard let settings = try? ipamSettings(host: Self.vipLeaseHost) else { return }
        let identity = Self.vipAttachment(service: service)
        _ = try? AddressManager(config: settings).release(
            LeaseOwner(containerID: identity.containerID, ifname: identity.ifName))
    }

    /// The lease identity of service `name`'s VIP.
    public static func vipAttachment(service name: String) -> (containerID: String, ifName: String) {
        (identityPrefix + name, "vip")
    }

    /// What the container IDs of services' own attachments start with (never a container's:
    /// runtimes use hex IDs).
    public static let identityPrefix = "service-"
}
