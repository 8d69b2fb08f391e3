import CNI
import CPierShim
import ClusterStore
import Glibc
import IPAddressing
import PierState
import Services

/// What `pier run --service S` (and `network connect --service S`) asks for.
public struct ServiceOptions: Sendable {
    public var name: String
    public var endpointMode: ServiceRecord.EndpointMode
    public var affinity: ServiceRecord.Affinity
    /// `--service-vip`: a VIP of the user's choosing (leased like any, so it cannot collide).
    public var vip: String?
    /// `-p` of a service member: published on every host of the network (the routing mesh).
    public var published: [PublishedServicePort]

    public init(
        name: String, endpointMode: ServiceRecord.EndpointMode = .vip, affinity: ServiceRecord.Affinity = .none,
        vip: String? = nil, published: [PublishedServicePort] = []
    ) {
        self.name = name
        self.endpointMode = endpointMode
        self.affinity = affinity
        self.vip = vip
        self.published = published
    }

    /// Everything that can be refused before anything changes.
    public func validate() throws(RuntimeError) {
        do { try ServiceRecord.validateName(name) } catch { throw RuntimeError.invalidArgument(error.message) }
        if let vip {
            guard IPAddress(vip) != nil else {
                throw RuntimeError.invalidArgument("--service-vip \(vip) is not an IP address")
            }
            guard endpointMode == .vip else {
                throw RuntimeError.invalidArgument("--service-vip cannot be used with --endpoint-mode dnsrr (no VIP)")
            }
        }
        if endpointMode == .dnsrr && !published.isEmpty {
            throw RuntimeError.invalidArgument(
                "-p on a dnsrr service member: the routing mesh balances like a VIP; use --endpoint-mode vip")
        }
    }
}

/// Service membership over the records in `<root>/services`: a container joins a service on its
/// network when it is created, becomes an active member (new connections, name answers) while
/// its process runs, and leaves when it is removed. The VIP is leased from the network's IPAM
/// with the first member and released after the last; every change re-applies the record.
extension ContainerManager {
    var services: ServiceStore { ServiceStore(root: environment.root) }

    /// Adds `attachment` of `record` to service `options.name` on the attachment's network.
    func joinService(
        _ options: ServiceOptions, record: ContainerRecord, attachment: NetworkAttachmentRecord,
        list: NetworkConfigList, active: Bool
    ) throws(RuntimeError) {
        let network = ServiceNetwork(list)
        let cluster = try Self.cluster(of: network)
        try serviceChange { () throws(RuntimeError) in
            let previous = services.record(network: list.name, name: options.name)
            var service =
                previous
                ?? ServiceRecord(
                    name: options.name, network: list.name, endpointMode: options.endpointMode,
                    affinity: options.affinity)
            var leased = false
            let shared = try cluster.map { (cluster) throws(RuntimeError) in try Self.definition(cluster, options.name)
            }
            if let held = shared ?? nil {
                // Another host's (or an earlier) definition holds: adopt it.
                service.endpointMode = held.endpointMode
                service.affinity = held.affinity
                service.vips = held.vips
                service.published = held.published
                try Self.requireCompatible(options, with: service)
            } else if let previous {
                try Self.requireCompatible(options, with: previous)
            } else if options.endpointMode == .vip {
                service.vips = try leaseVIP(network: network, service: options.name, requested: options.vip)
                leased = true
            }
            for port in options.published where !service.published.contains(port) { service.published.append(port) }
            if let cluster {
                do {
                    let wanted = ServiceCluster.Definition(service)
                    let held = try cluster.claim(wanted, name: service.name)
                    if held.vips != service.vips, leased {
                        // Another host created the service meanwhile: its VIP is the service's.
                        releaseVIP(network: network, service: service.name)
                        service.vips = held.vips
                    }
                    if held != ServiceCluster.Definition(service) {
                        service.published = held.published + service.published.filter { !held.published.contains($0) }
                        try cluster.update(ServiceCluster.Definition(service), name: service.name)
                    }
                } catch {
                    if leased { releaseVIP(network: network, service: service.name) }
                    throw RuntimeError.failed("joining service \(options.name): \(error)")
                }
            }
            service.members.removeAll { $0.containerID == record.id && $0.ifName == attachment.ifName }
            service.members.append(
                ServiceMember(
                    containerID: record.id, container: record.name, ifName: attachment.ifName,
                    host: cluster?.host ?? Self.hostName,
                    addresses: attachment.addresses.map {
                        IPPrefix($0, allowBareAddress: true)?.address.description ?? $0
                    },
                    active: active))
            do {
                try commit(service, previous: previous, network: network, cluster: cluster)
            } catch {
                // Back to what it was: the record, the kernel and, for a new service, the lease.
                var without = service
                without.members.removeAll { $0.containerID == record.id && $0.ifName == attachment.ifName }
                if (try? commit(without, previous: service, network: network, cluster: cluster)) == nil {
                    services.remove(network: service.network, name: service.name)
                }
                throw RuntimeError.failed("joining service \(options.name): \(error)")
            }
        }
    }

    /// Saves `service` and applies it to this host. On an overlay network this host's members
    /// go to the cluster store first, and the record saved and applied is the merged one of
    /// every host. A service left without members anywhere is withdrawn, its VIP released.
    @discardableResult
    private func commit(
        _ service: ServiceRecord, previous: ServiceRecord?, network: ServiceNetwork, cluster: ServiceCluster?
    ) throws(RuntimeError) -> ServiceRecord {
        var merged = service
        do {
            if let cluster {
                try cluster.syncLocalMembers(service.name, service.members.filter { $0.host == cluster.host })
                merged = try cluster.record(named: service.name) ?? service
            }
            if merged.members.isEmpty {
                try? ServiceApplier(network: network).withdraw(merged, stillServing: stillServing(except: merged))
                try cluster?.deleteDefinition(of: merged.name)
                services.remove(network: merged.network, name: merged.name)
                releaseVIP(network: network, service: merged.name)
                return merged
            }
            // On an overlay the store holds the service; this host keeps a record only while it
            // has members of its own (their memberships are what `pier` here changes).
            if let cluster, !merged.members.contains(where: { $0.host == cluster.host }) {
                services.remove(network: merged.network, name: merged.name)
            } else {
                try services.save(merged)
            }
            try ServiceApplier(network: network).apply(
                merged, previous: previous, stillServing: stillServing(except: merged))
        } catch {
            throw RuntimeError.failed("service \(service.name): \(error)")
        }
        return merged
    }

    /// `commit` for a service whose network is found from its record.
    private func commit(_ service: ServiceRecord, previous: ServiceRecord) throws(RuntimeError) {
        let network = try serviceNetwork(of: service)
        try commit(service, previous: previous, network: network, cluster: try Self.cluster(of: network))
    }

    /// The cluster store view of an overlay network's services; nil for a host-local network.
    static func cluster(of network: ServiceNetwork) throws(RuntimeError) -> ServiceCluster? {
        guard let config = network.store else { return nil }
        do {
            return ServiceCluster(store: try config.open(), network: network.name, host: try config.resolvedHost())
        } catch {
            throw RuntimeError.failed("network \(network.name): cluster store: \(error)")
        }
    }

    private static func definition(_ cluster: ServiceCluster, _ name: String) throws(RuntimeError)
        -> ServiceCluster.Definition?
    {
        do { return try cluster.definition(of: name) } catch { throw RuntimeError.failed("\(error)") }
    }

    /// Whether `containerID` is in any service: read without the lock, so a container that
    /// never joined one costs one directory listing.
    func isServiceMember(_ containerID: String) -> Bool {
        services.all().contains { $0.members.contains { $0.containerID == containerID } }
    }

    /// After a start: the container's memberships become active, and a detached container gets
    /// a watcher that makes them inactive within a poll interval of its process ending (there
    /// is no daemon that would notice otherwise).
    func activateServiceMemberships(_ record: ContainerRecord, detached: Bool) throws(RuntimeError) {
        guard isServiceMember(record.id) else { return }
        try setServiceMembersActive(record.id, true)
        if detached {
            _ = try ProcessSpawner.spawn(
                [environment.executable] + globalArguments + ["__service-watch", record.id], output: .discard,
                newSession: true, reportFailure: false)
        }
    }

    /// The body of `pier __service-watch ID`: waits for the container's process to end, then takes
    /// its memberships out of the choice, unless the container was started again meanwhile.
    public func watchServiceMember(_ id: String) {
        guard let started = store.load(id: id), let pid = started.pid, let start = started.pidStartTime else { return }
        // No polling where pidfds exist: the member leaves the moment the process ends.
        _ = ProcessState.waitForExit(pid: pid, startTime: start, seconds: nil, interval: Self.serviceWatchInterval)
        guard let record = store.load(id: id), record.pid == pid || record.status == .removing else { return }
        try? setServiceMembersActive(id, false)
    }

    /// Without pidfds (before Linux 5.3): 100 ms, well within the second services promise.
    static let serviceWatchInterval: useconds_t = 100_000

    /// Marks every membership of `containerID` active or not and re-applies those services.
    func setServiceMembersActive(_ containerID: String, _ active: Bool) throws(RuntimeError) {
        guard isServiceMember(containerID) else { return }
        try serviceChange { () throws(RuntimeError) in
            for var service in services.all() where service.members.contains(where: { $0.containerID == containerID }) {
                let previous = service
                for index in service.members.indices where service.members[index].containerID == containerID {
                    service.members[index].active = active
                }
                guard service != previous else { continue }
                try commit(service, previous: previous)
            }
        }
    }

    /// Takes `containerID` out of its services (on `network` only, when given). A service left
    /// without members is withdrawn and its VIP released. Keeps going after a failure.
    @discardableResult
    func leaveServices(_ containerID: String, network: String? = nil) -> [String] {
        guard isServiceMember(containerID) else { return [] }
        var failures: [String] = []
        do {
            try serviceChange { () throws(RuntimeError) in
                for var service in services.all()
                where (network == nil || service.network == network)
                    && service.members.contains(where: { $0.containerID == containerID })
                {
                    let previous = service
                    service.members.removeAll { $0.containerID == containerID }
                    do { try commit(service, previous: previous) } catch {
                        failures.append("service \(service.name): \(error)")
                    }
                }
            }
        } catch {
            failures.append("\(error)")
        }
        return failures
    }

    /// The service's network as its config (or, once the config is gone, the VIP lease's
    /// cached config) describes it.
    private func serviceNetwork(of service: ServiceRecord) throws(RuntimeError) -> ServiceNetwork {
        if let list = try? configs.load(network: service.network) { return ServiceNetwork(list) }
        guard let cached = configForDelete(network: service.network, request: Self.vipLeaseRequest(service.name))
        else {
            throw RuntimeError.failed("network \(service.network) has no config")
        }
        return ServiceNetwork(cached)
    }

    /// Re-applies every service record of this host (after `pier firewall reload` rebuilt the
    /// table, or after a restart). Returns what failed.
    public func reapplyServices() -> [String] {
        var failures: [String] = []
        for service in serviceRecords() {
            guard let list = try? configs.load(network: service.network) else {
                failures.append("service \(service.name): network \(service.network) has no config")
                continue
            }
            do {
                try ServiceApplier(network: ServiceNetwork(list)).apply(
                    service, previous: nil, stillServing: stillServing(except: service))
            } catch {
                failures.append("\(error)")
            }
        }
        return failures
    }

    /// The service records, for `pier service ls` and `inspect`: this host's, and for every
    /// overlay network configured here, the cluster's (which this host's agent applies).
    public func serviceRecords() -> [ServiceRecord] {
        var records = services.all()
        for entry in configs.entries() {
            guard let list = entry.list, let cluster = try? Self.cluster(of: ServiceNetwork(list)),
                let shared = try? cluster.records()
            else { continue }
            records.removeAll { $0.network == list.name }
            records += shared
        }
        return records
    }

    /// Every address other services of this host still balance to.
    private func stillServing(except service: ServiceRecord) -> Set<IPAddress> {
        Set(services.all().filter { $0.owner != service.owner }.flatMap(\.activeAddresses))
    }

    private func serviceChange(_ body: () throws(RuntimeError) -> Void) throws(RuntimeError) {
        var failure: RuntimeError?
        do {
            try services.locked { () throws(ServiceError) in
                do throws(RuntimeError) { try body() } catch { failure = error }
            }
        } catch {
            throw RuntimeError.failed("\(error)")
        }
        if let failure { throw failure }
    }

    /// The namespace the VIP lease names: IPAM never enters it, but ADD requires one, and this
    /// one lives as long as the host (GC sees the lease as live while the service record keeps it).
    static let vipLeaseNamespace = "/proc/1/ns/net"

    /// The attachment the VIP lease of `service` is (`service-<S>`/`vip`).
    static func vipLeaseRequest(_ service: String, capabilities: JSONObject = [:]) -> AttachmentRequest {
        let identity = ServiceNetwork.vipAttachment(service: service)
        return AttachmentRequest(
            containerID: identity.containerID, netns: vipLeaseNamespace, ifName: identity.ifName,
            capabilityArgs: capabilities)
    }

    /// The VIP: an ADD of the network's IPAM alone for the attachment `service-<S>`/`vip` (an
    /// overlay's: a cluster lease taken in-process, see `ServiceNetwork.leaseClusterVIP`).
    private func leaseVIP(network: ServiceNetwork, service: String, requested: String?) throws(RuntimeError)
        -> [String]
    {
        do {
            if network.store != nil { return try network.leaseClusterVIP(service: service, requested: requested) }
            let list = try network.vipLeaseList()
            var capabilities = JSONObject()
            if let requested { capabilities["ips"] = .array([.string(requested)]) }
            let request = Self.vipLeaseRequest(service, capabilities: capabilities)
            do {
                return try executor.add(list, request).ips.map { $0.address.address.description }
            } catch {
                try? executor.delete(list, request)
                throw error
            }
        } catch {
            if let requested {
                throw RuntimeError.failed("the VIP \(requested) cannot be leased on network \(network.name): \(error)")
            }
            throw RuntimeError.failed("no VIP for service \(service) on network \(network.name): \(error)")
        }
    }

    private func releaseVIP(network: ServiceNetwork, service: String) {
        if network.store != nil {
            network.releaseClusterVIP(service: service)
            return
        }
        let request = Self.vipLeaseRequest(service)
        let list = configForDelete(network: network.name, request: request) ?? (try? network.vipLeaseList())
        if let list { try? executor.delete(list, request) }
    }

    static func requireCompatible(_ options: ServiceOptions, with service: ServiceRecord) throws(RuntimeError) {
        if options.endpointMode != service.endpointMode {
            throw RuntimeError.invalidArgument(
                "service \(service.name) on network \(service.network) is --endpoint-mode \(service.endpointMode.rawValue)"
            )
        }
        if options.affinity != service.affinity {
            throw RuntimeError.invalidArgument(
                "service \(service.name) on network \(service.network) has --affinity \(service.affinity.rawValue)")
        }
        if let vip = options.vip, !service.vips.contains(vip) {
            throw RuntimeError.invalidArgument(
                "service \(service.name) already has the VIP \(service.vips.joined(separator: ", ")), not \(vip)")
        }
    }

    static var hostName: String { ClusterStoreConfig.kernelHostName() }
}
