import CNI
import Firewall
import Glibc
import IPAddressing
import NameService
import NetNS
import Netlink
import PierTables

/// Makes the kernel and the name service of this host match one service record: the VIP's
/// slots over the active members (or none), the mesh ports, the VIP on the network's bridge,
/// and the names `S` and `tasks.S`. Idempotent: applying a record twice changes nothing, so
/// `pier firewall reload`, the agent and a retried command can all call it.
public struct ServiceApplier {
    public let network: ServiceNetwork
    let nft: NFTablesClient

    public init(network: ServiceNetwork, namespace: NetworkNamespace? = nil) throws(ServiceError) {
        self.network = network
        do { nft = try NFTablesClient(namespace: namespace) } catch {
            throw ServiceError("opening nf_tables: \(error)")
        }
    }

    /// `previous` is what was applied before (its leftovers are removed); `stillServing` the
    /// addresses other services of this host still balance to (their hairpin entries stay).
    public func apply(_ record: ServiceRecord, previous: ServiceRecord?, stillServing: Set<IPAddress>)
        throws(ServiceError)
    {
        let active = record.activeAddresses
        do {
            if record.endpointMode == .vip {
                for vip in record.vipAddresses {
                    try ServiceRules(client: nft).publish(
                        service: record.owner, vip: vip, ports: [], members: active,
                        affinity: record.affinity.kernel)
                }
            }
            let families = Set(active.map(\.family) + record.vipAddresses.map(\.family))
            let oldPorts = Set(previous?.published ?? []).subtracting(record.published)
            for family in IPFamily.allCases {
                if !oldPorts.isEmpty {
                    try ServiceRules(client: nft).removeMesh(
                        service: record.owner, family: family, ports: oldPorts.compactMap(\.servicePort))
                }
                guard families.contains(family), !record.published.isEmpty else { continue }
                try ServiceRules(client: nft).publishMesh(
                    service: record.owner, family: family, ports: record.published.compactMap(\.servicePort),
                    members: active)
            }
            let gone = Set(previous?.activeAddresses ?? []).subtracting(active).subtracting(stillServing)
            if !gone.isEmpty { try ServiceRules(client: nft).forgetMembers(Array(gone)) }
        } catch {
            throw ServiceError("service \(record.name): nftables: \(error)")
        }
        if record.endpointMode == .vip { try answerForVIPs(record.vipAddresses) }
        if network.store != nil, !record.published.isEmpty, let host = try? network.store?.resolvedHost() {
            _ = try MeshSource(network: network, host: host).ensure(nft: nft)
        }
        try publishNames(record)
    }

    /// The service is gone from this host: slots, mesh ports, the VIP on the bridge, names.
    /// Whatever is already gone is skipped; every step is tried.
    public func withdraw(_ record: ServiceRecord, stillServing: Set<IPAddress>) throws(ServiceError) {
        var failures: [String] = []
        let rules = ServiceRules(client: nft)
        for vip in record.vipAddresses {
            do { try rules.remove(service: record.owner, vip: vip, ports: []) } catch {
                failures.append("\(error)")
            }
        }
        for family in IPFamily.allCases where !record.published.isEmpty {
            do {
                try rules.removeMesh(
                    service: record.owner, family: family, ports: record.published.compactMap(\.servicePort))
            } catch  where !error.isNotFound {
                failures.append("\(error)")
            } catch {}
        }
        let addresses = record.members.flatMap(\.addresses).compactMap(IPAddress.init)
        do { try rules.forgetMembers(addresses.filter { !stillServing.contains($0) }) } catch {
            failures.append("\(error)")
        }
        if record.endpointMode == .vip { stopAnsweringForVIPs(record.vipAddresses) }
        var empty = record
        empty.members = []
        do { try publishNames(empty) } catch { failures.append("\(error)") }
        guard failures.isEmpty else {
            throw ServiceError("service \(record.name): " + failures.joined(separator: "; "))
        }
    }

    /// The VIP as a host address on the bridge (a /32 or /128, so it adds no route), and the
    /// bridge's traffic through conntrack (see `setBridgeNetfilterCalls`).
    func answerForVIPs(_ vips: [IPAddress]) throws(ServiceError) {
        guard let bridge = network.bridge, !vips.isEmpty else { return }
        do {
            let netlink = try RouteNetlink()
            let link = try netlink.link(named: bridge)
            for vip in vips {
                var options = AddressOptions()
                options.noDAD = true
                options.replace = true
                try netlink.addAddress(IPPrefix(host: vip), index: link.index, options: options)
            }
            try netlink.setBridgeNetfilterCalls(index: link.index, true)
        } catch {
            throw ServiceError("putting the VIP on bridge \(bridge): \(error)")
        }
    }

    func stopAnsweringForVIPs(_ vips: [IPAddress]) {
        guard let bridge = network.bridge, let netlink = try? RouteNetlink(),
            let link = try? netlink.link(named: bridge)
        else { return }
        for vip in vips { try? netlink.deleteAddress(IPPrefix(host: vip), index: link.index) }
    }

    /// `S` (the VIP, or with `dnsrr` the active members) and `tasks.S` (the active members), as
    /// two records of the network's name service beside the containers' own, with the
    /// network's settings copied from a member's record. No members: both names go.
    public func publishNames(_ record: ServiceRecord) throws(ServiceError) {
        guard let directory = network.namesDirectory else { return }
        let store = NameRecordStore(directory: directory)
        let identity = ServiceNetwork.vipAttachment(service: record.name)
        let active = record.activeAddresses
        do {
            try store.withLock {
                // A member's record when it runs here, else any container's of the network (a
                // client's on a host without members): the network's settings are in every record.
                let template =
                    record.members.lazy.compactMap {
                        try? store.record(network: record.network, containerID: $0.containerID, ifName: $0.ifName)
                    }.first
                    ?? store.records(network: record.network).first {
                        !$0.containerID.hasPrefix(ServiceNetwork.identityPrefix)
                    }
                let wanted: [(ifName: String, name: String, addresses: [IPAddress])] = [
                    (identity.ifName, record.name, record.endpointMode == .vip ? record.vipAddresses : active),
                    (Self.tasksInterface, "tasks." + record.name, active),
                ]
                var changed = false
                for (ifName, name, addresses) in wanted {
                    let current = try? store.record(
                        network: record.network, containerID: identity.containerID, ifName: ifName)
                    if let template, !active.isEmpty, !addresses.isEmpty {
                        var names = template
                        names.containerID = identity.containerID
                        names.ifName = ifName
                        names.names = [name]
                        names.addresses = addresses
                        names.containerUpstreams = []
                        guard current != names else { continue }
                        try store.write(names)
                        changed = true
                    } else if current != nil {
                        changed =
                            try store.remove(network: record.network, containerID: identity.containerID, ifName: ifName)
                            || changed
                    }
                }
                // Unchanged (the agent refreshes names on every store change): no reload.
                if changed { try NameServerControl.reload(store, network: record.network, launch: nil) }
            }
        } catch {
            throw ServiceError("service \(record.name): names: \(error)")
        }
    }

    /// The interface name of the `tasks.S` record (the VIP lease's identity with another
    /// interface, so GC can keep it beside the lease).
    public static let tasksInterface = "tasks"
}

extension PublishedServicePort {
    /// The mesh port as `ServiceRules` takes it; nil for a protocol it cannot name.
    public var servicePort: ServicePort? {
        guard let ipProtocol = IPProtocol(name: `protocol`) else { return nil }
        return ServicePort(ipProtocol: ipProtocol, port: hostPort, targetPort: targetPort)
    }
}

extension ServiceRecord.Affinity {
    /// How `ServiceRules` picks a member for it.
    public var kernel: ServiceAffinity { self == .clientIP ? .clientIP : .none }
}
