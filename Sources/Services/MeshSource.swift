import ClusterStore
import Firewall
import IPAM
import IPAddressing
import Netlink
import Overlay
import PierTables

/// The address this host's routing mesh speaks from on an overlay network. Every host holds the
/// same gateway address on an overlay bridge, so a mesh connection masqueraded to it would get
/// its reply from a member on another host delivered to that host's own bridge. Each host
/// therefore leases one address of the overlay for itself (identity `mesh-<host>`/`mesh`),
/// holds it as a /32 on its bridge, publishes it as an endpoint of the overlay (so the other
/// hosts' agents give it FDB and neighbour entries like any container), and SNATs mesh
/// connections leaving through the bridge to it (`service_mesh_source_v4`).
struct MeshSource {
    let network: ServiceNetwork
    let host: String

    static func owner(host: String) -> LeaseOwner { LeaseOwner(containerID: "mesh-" + host, ifname: "mesh") }

    /// Leases (once), places and announces the address; returns it. IPv4 overlays only.
    func ensure(nft: NFTablesClient) throws(ServiceError) -> IPAddress? {
        guard let bridge = network.bridge, let store = network.store, let settings = try settings() else { return nil }
        let owner = Self.owner(host: host)
        let prefix: IPPrefix
        do {
            let manager = try AddressManager(config: settings)
            func held() throws(IPAMError) -> IPPrefix? {
                guard let lease = try manager.leases().first(where: { $0.containerID == owner.containerID }),
                    let range = settings.rangeSets.first?.range(for: lease.address)
                else { return nil }
                return IPPrefix(address: lease.address, length: range.subnet.length)
            }
            if let existing = try held() {
                prefix = existing
            } else {
                do {
                    guard let leased = try manager.add(owner).ips.first(where: { $0.address.address.family == .v4 })
                    else { return nil }
                    prefix = leased.address
                } catch {
                    // This host's agent and its `pier` may lease at the same moment: one wins.
                    guard let existing = try held() else { throw error }
                    prefix = existing
                }
            }
        } catch {
            throw ServiceError("mesh source address on \(network.name): \(error)")
        }
        let address = prefix.address
        do {
            let netlink = try RouteNetlink()
            let link = try netlink.link(named: bridge)
            guard let mac = link.mac else { return nil }
            var options = AddressOptions()
            options.replace = true
            try netlink.addAddress(IPPrefix(host: address), index: link.index, options: options)
            let registry = Registry(network: network.name, store: try store.open(), host: self.host)
            try registry.publish(
                EndpointRecord(
                    network: network.name, containerID: owner.containerID, ifname: owner.ifname, host: self.host,
                    mac: mac, ips: [prefix]))
            try ServiceRules(client: nft).setMeshSource(bridge: bridge, address: address)
        } catch {
            throw ServiceError("mesh source \(address) on \(bridge): \(error)")
        }
        return address
    }

    private func settings() throws(ServiceError) -> IPAMSettings? {
        try network.ipamSettings(host: host)
    }
}
