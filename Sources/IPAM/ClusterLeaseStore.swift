import ClusterStore
import IPAddressing
import JSON

/// Leases kept in the cluster store, so every host sharing the store sees every address:
///
///     pier/ipam/<network>/leases/<ip>          {"containerID":…,"host":…,"ifname":…}
///     pier/ipam/<network>/last/<host>/<N>      round-robin marker, per host (a hint)
///
/// Each reservation is one create-if-absent, so two hosts never hold the same address, and
/// each release is delete-if-owner, so a late DEL never frees an address someone re-took.
public final class ClusterLeaseStore: LeaseBackend {
    public let store: any ClusterStore
    public let host: String
    public let network: String

    /// A lease record's value; keys sorted, so one owner always writes the same bytes.
    private struct Owner {
        var containerID: String
        var ifname: String
        var host: String

        init(containerID: String, ifname: String, host: String) {
            self.containerID = containerID
            self.ifname = ifname
            self.host = host
        }

        init?(_ text: String) {
            guard let value = try? JSONValue(parsing: text), let containerID = value["containerID"]?.stringValue,
                let ifname = value["ifname"]?.stringValue, let host = value["host"]?.stringValue
            else { return nil }
            self.init(containerID: containerID, ifname: ifname, host: host)
        }

        var encoded: String {
            JSONValue.object([
                "containerID": .string(containerID), "host": .string(host), "ifname": .string(ifname),
            ]).encodedString
        }
    }

    /// `network` must already be validated; `host` must be a valid key segment.
    public init(store: any ClusterStore, host: String, network: String) {
        self.store = store
        self.host = host
        self.network = network
    }

    private var leasePrefix: String { "pier/ipam/\(network)/leases/" }

    public func exclusively<T>(_ body: () throws(IPAMError) -> T) throws(IPAMError) -> T { try body() }

    public func leases() throws(IPAMError) -> [Lease] {
        let snapshot: StoreSnapshot
        do {
            snapshot = try store.list(prefix: leasePrefix)
        } catch {
            throw Self.wrap(error, "cannot list leases of \(network)")
        }
        return snapshot.records.compactMap { record in
            let name = String(record.key.dropFirst(leasePrefix.count))
            guard let address = IPAddress(name),
                let owner = Owner(record.value)
            else { return nil }
            return Lease(
                address: address, containerID: owner.containerID, ifname: owner.ifname, host: owner.host,
                recordValue: record.value)
        }.sorted { $0.address < $1.address }
    }

    public func reserve(_ address: IPAddress, for attachment: LeaseOwner) throws(IPAMError) -> Bool {
        let owner = Owner(containerID: attachment.containerID, ifname: attachment.ifname, host: host)
        do {
            switch try store.create(leasePrefix + address.description, value: owner.encoded) {
            case .written: return true
            case .conflict: return false
            }
        } catch {
            throw Self.wrap(error, "cannot reserve \(address)")
        }
    }

    public func release(_ lease: Lease) throws(IPAMError) {
        guard let value = lease.recordValue else { return }
        do {
            _ = try store.delete(leasePrefix + lease.address.description, ifValue: value)
        } catch {
            throw Self.wrap(error, "cannot release \(lease.address)")
        }
    }

    public func lastReserved(rangeSetIndex index: Int) -> IPAddress? {
        guard let record = try? store.get("pier/ipam/\(network)/last/\(host)/\(index)") else { return nil }
        return IPAddress(record.value)
    }

    public func recordLastReserved(_ address: IPAddress, rangeSetIndex index: Int) throws(IPAMError) {
        do {
            try store.put("pier/ipam/\(network)/last/\(host)/\(index)", value: address.description)
        } catch {
            throw Self.wrap(error, "cannot record last reserved address")
        }
    }

    public func isLocal(_ lease: Lease) -> Bool { lease.host == host }

    public func unavailableReason() -> String? {
        do {
            try store.checkHealth()
            _ = try store.list(prefix: leasePrefix)
            return nil
        } catch {
            return error.description
        }
    }

    static func wrap(_ error: ClusterStoreError, _ message: String) -> IPAMError {
        let kind: IPAMError.Kind
        switch error.kind {
        case .invalidArgument: kind = .invalidConfig
        case .unavailable: kind = .storeUnavailable
        case .io, .corrupt: kind = .io
        }
        return IPAMError(kind, message, details: error.description, errno: error.errno)
    }
}
