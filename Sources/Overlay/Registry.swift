import ClusterStore
import IPAddressing

/// Why an overlay store operation was refused (beyond the store's own errors).
public struct OverlayConflict: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// Writes and withdraws one host's records of one overlay network.
public struct Registry {
    public let keys: OverlayKeys
    public let store: any ClusterStore
    public let host: String

    public init(network: String, store: any ClusterStore, host: String) {
        self.keys = OverlayKeys(network: network)
        self.store = store
        self.host = host
    }

    /// Records the network's VNI and port on first use; afterwards every host must agree.
    public func claimNetwork(_ wanted: NetworkRecord) throws -> NetworkRecord {
        switch try store.create(keys.networkRecord, value: RecordCoding.encode(wanted)) {
        case .written: return wanted
        case .conflict(let current):
            guard let current, let existing = RecordCoding.decode(NetworkRecord.self, current.value) else {
                // Deleted between the two steps, or unreadable: overwrite with ours.
                try store.put(keys.networkRecord, value: RecordCoding.encode(wanted))
                return wanted
            }
            guard existing == wanted else {
                throw OverlayConflict(
                    message: "overlay network \(keys.network) uses VNI \(existing.vni) port \(existing.port) in the"
                        + " cluster store; this config says VNI \(wanted.vni) port \(wanted.port)")
            }
            return existing
        }
    }

    /// Publishes (or refreshes) this host's VTEP; skipped when the record already says so.
    public func publishHost(vtep: IPAddress) throws(ClusterStoreError) {
        let value = RecordCoding.encode(HostRecord(host: host, vtep: vtep))
        if try store.get(keys.host(host))?.value == value { return }
        try store.put(keys.host(host), value: value)
    }

    /// Withdraws this host's record (when it has no endpoints left).
    public func withdrawHost() throws(ClusterStoreError) {
        guard let current = try store.get(keys.host(host)) else { return }
        _ = try store.delete(keys.host(host), ifValue: current.value)
    }

    /// Publishes an endpoint of this host. A record left by an earlier ADD of the same
    /// attachment (one whose DEL never came) is replaced.
    public func publish(_ endpoint: EndpointRecord) throws(ClusterStoreError) {
        let key = keys.endpoint(host: host, containerID: endpoint.containerID, ifname: endpoint.ifname)
        let value = RecordCoding.encode(endpoint)
        var attempts = 0
        while true {
            switch try store.create(key, value: value) {
            case .written: return
            case .conflict(let current):
                guard let current else { continue }
                if current.value == value { return }
                if case .written = try store.compareAndSwap(key, expectedRevision: current.revision, value: value) {
                    return
                }
            }
            attempts += 1
            if attempts > 5 {
                throw ClusterStoreError(.unavailable, operation: "publish \(key)", message: "kept conflicting")
            }
        }
    }

    /// Withdraws the attachment's endpoint; true when there was one.
    @discardableResult
    public func withdraw(containerID: String, ifname: String) throws(ClusterStoreError) -> Bool {
        let key = keys.endpoint(host: host, containerID: containerID, ifname: ifname)
        guard let current = try store.get(key) else { return false }
        // Delete-if-value: a record rewritten since we read it belongs to a newer ADD.
        return try store.delete(key, ifValue: current.value) == .deleted
    }

    /// This host's endpoints of the network.
    public func localEndpoints() throws(ClusterStoreError) -> [EndpointRecord] {
        try store.list(prefix: keys.endpoints(of: host)).records.compactMap {
            RecordCoding.decode(EndpointRecord.self, $0.value)
        }
    }

    /// The attachment's endpoint record, if published.
    public func endpoint(containerID: String, ifname: String) throws(ClusterStoreError) -> EndpointRecord? {
        let key = keys.endpoint(host: host, containerID: containerID, ifname: ifname)
        return try store.get(key).flatMap { RecordCoding.decode(EndpointRecord.self, $0.value) }
    }
}
