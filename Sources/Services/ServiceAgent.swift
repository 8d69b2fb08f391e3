import ClusterStore
import Glibc
import IPAddressing
import JSON
import Overlay

/// The services half of `pier agent`: keeps this host's kernel and names in line with the
/// services of one overlay network as every host's members come and go, and tells the other
/// hosts this one is alive. Driven by the overlay agent's loop (`tick`), so one process and one
/// store watch serve both.
public final class ServiceAgent {
    public let cluster: ServiceCluster
    let namesDirectory: String?
    let log: (String) -> Void
    /// How long a host's heartbeat may stand still before its members leave every choice.
    public var hostTimeout: Double = 10
    /// How often this host's heartbeat moves.
    public var beatInterval: Double = 2

    private var applied: [String: ServiceRecord] = [:]
    private var network: ServiceNetwork?
    private var beats: UInt64 = 0
    private var lastBeat: Double = -.infinity
    /// Every host's last heartbeat value and when (this host's clock) it last changed.
    private var heard: [String: (value: String, since: Double)] = [:]
    private var deadHosts: Set<String> = []
    private var lastError = ""

    /// `network`: the network as its conflist on this host describes it (the mesh needs its
    /// IPAM); without one, the bridge is found from the VNI in the store.
    public init(
        cluster: ServiceCluster, network: ServiceNetwork?, namesDirectory: String?, log: @escaping (String) -> Void
    ) {
        self.cluster = cluster
        self.network = network
        self.namesDirectory = namesDirectory
        self.log = log
    }

    /// One pass: beat when due, notice hosts that stopped beating, and re-apply every service
    /// when the store changed or a host's liveness did.
    public func tick(storeChanged: Bool, now: Double) {
        do {
            if now - lastBeat >= beatInterval {
                beats += 1
                try cluster.beat(beats)
                lastBeat = now
            }
            let livenessChanged = try observeHeartbeats(now: now)
            guard storeChanged || livenessChanged || applied.isEmpty else { return }
            try reconcile()
            lastError = ""
        } catch {
            if "\(error)" != lastError { log("services: \(error) (retrying)") }
            lastError = "\(error)"
        }
    }

    private func observeHeartbeats(now: Double) throws(ServiceError) -> Bool {
        for (host, value) in try cluster.heartbeats() where heard[host]?.value != value {
            heard[host] = (value, now)
        }
        let dead = Set(heard.filter { $0.key != cluster.host && now - $0.value.since >= hostTimeout }.keys)
        defer { deadHosts = dead }
        for host in dead.subtracting(deadHosts) {
            log("services: host \(host) stopped beating \(Int(hostTimeout)) s ago; its members leave the choice")
        }
        for host in deadHosts.subtracting(dead) { log("services: host \(host) beats again") }
        return dead != deadHosts
    }

    private func reconcile() throws(ServiceError) {
        guard let network = try networkDescription() else { return }
        var current: [String: ServiceRecord] = [:]
        for var record in try cluster.records() {
            for index in record.members.indices where deadHosts.contains(record.members[index].host) {
                record.members[index].active = false
            }
            current[record.name] = record
        }
        let applier = try ServiceApplier(network: network)
        for (name, record) in current {
            guard applied[name] != record else {
                // A container started here since may be the first to give the names a template.
                try applier.publishNames(record)
                continue
            }
            let serving = Set(current.values.filter { $0.name != name }.flatMap(\.activeAddresses))
            try applier.apply(record, previous: applied[name], stillServing: serving)
            log("services: \(name) on \(cluster.network): \(record.activeAddresses.count) active member(s)")
        }
        for (name, record) in applied where current[name] == nil {
            let serving = Set(current.values.flatMap(\.activeAddresses))
            try applier.withdraw(record, stillServing: serving)
            log("services: \(name) on \(cluster.network) withdrawn")
        }
        applied = current
    }

    /// The bridge comes from the network's VNI in the store (no conflist needed).
    private func networkDescription() throws(ServiceError) -> ServiceNetwork? {
        if let network { return network }
        let key = OverlayKeys(network: cluster.network).networkRecord
        let record: StoreRecord?
        do { record = try cluster.store.get(key) } catch { throw ServiceError("cluster store: \(error)") }
        guard let text = record?.value, let value = try? JSONValue(parsing: text), let vni = value["vni"]?.intValue,
            let number = UInt32(exactly: vni)
        else { return nil }
        let described = ServiceNetwork(
            name: cluster.network, bridge: OverlayDevices.bridgeName(vni: number), namesDirectory: namesDirectory,
            store: nil)
        network = described
        return described
    }
}
