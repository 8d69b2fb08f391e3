import ClusterStore
import IPAddressing
import Netlink

/// An overlay network's records as read from the store at one revision.
public struct OverlayState: Sendable {
    public var network: NetworkRecord?
    public var hosts: [String: HostRecord] = [:]
    public var endpoints: [EndpointRecord] = []
    /// Records that did not parse; reported, never acted on.
    public var unreadable: [String] = []
    public var revision: UInt64

    public init(snapshot: StoreSnapshot, keys: OverlayKeys) {
        revision = snapshot.revision
        for record in snapshot.records {
            if record.key == keys.networkRecord {
                network = RecordCoding.decode(NetworkRecord.self, record.value)
                if network == nil { unreadable.append(record.key) }
            } else if record.key.hasPrefix(keys.hostsPrefix) {
                guard let host = RecordCoding.decode(HostRecord.self, record.value) else {
                    unreadable.append(record.key)
                    continue
                }
                hosts[host.host] = host
            } else if record.key.hasPrefix(keys.endpointsPrefix) {
                guard let endpoint = RecordCoding.decode(EndpointRecord.self, record.value) else {
                    unreadable.append(record.key)
                    continue
                }
                endpoints.append(endpoint)
            }
        }
    }

    /// What this host's VXLAN device must know: every endpoint on another host whose host
    /// record still exists. Endpoints are local when their host is `localHost` or tunnels to
    /// `localVTEP` (namespaces acting as hosts may share a host name, never a VTEP).
    public func remoteEntries(localHost: String?, localVTEP: IPAddress) -> DesiredEntries {
        var desired = DesiredEntries()
        for endpoint in endpoints.sorted(by: {
            ($0.host, $0.containerID, $0.ifname) < ($1.host, $1.containerID, $1.ifname)
        }) {
            guard endpoint.host != localHost, let host = hosts[endpoint.host], host.vtep != localVTEP else { continue }
            desired.fdb[endpoint.mac] = host.vtep
            for ip in endpoint.ips { desired.neighbors[ip.address] = endpoint.mac }
        }
        return desired
    }
}

/// The static entries a VXLAN device should hold.
public struct DesiredEntries: Sendable, Equatable {
    /// Remote container MAC → remote VTEP.
    public var fdb: [MACAddress: IPAddress] = [:]
    /// Remote container IP → its MAC.
    public var neighbors: [IPAddress: MACAddress] = [:]

    public init() {}

    /// "Address at MAC" for each of `addresses` these entries hold, in that order.
    public func announcements(of addresses: [IPAddress]) -> [NeighbourAnnouncement] {
        addresses.compactMap { address in
            neighbors[address].map { NeighbourAnnouncement(address: address, mac: $0) }
        }
    }
}
