import ClusterStore
import FoundationEssentials

/// Services of an overlay network, shared by its hosts through the cluster store:
///
///     pier/services/<network>/services/<S>                       {"affinity","endpointMode","published","vips"}
///     pier/services/<network>/members/<S>/<host>/<cid>/<ifname>  {"active","addresses","container"}
///     pier/services/<network>/heartbeats/<host>                  a counter its agent bumps
///
/// A host writes only its own members; every host (its `pier` at once, its agent on the next
/// store change) applies the merged view, so a VIP balances over members on every host.
public struct ServiceCluster {
    public let store: any ClusterStore
    public let network: String
    public let host: String

    public init(store: any ClusterStore, network: String, host: String) {
        self.store = store
        self.network = network
        self.host = host
    }

    var root: String { "pier/services/\(network)/" }
    func definitionKey(_ name: String) -> String { root + "services/" + name }
    func membersPrefix(_ name: String) -> String { root + "members/" + name + "/" }
    func memberKey(_ name: String, host: String, containerID: String, ifName: String) -> String {
        membersPrefix(name) + host + "/" + containerID + "/" + ifName
    }
    var heartbeatsPrefix: String { root + "heartbeats/" }

    /// What every host must agree on: set by the first member's host, adopted by the others.
    public struct Definition: Codable, Sendable, Equatable {
        public var endpointMode: ServiceRecord.EndpointMode
        public var affinity: ServiceRecord.Affinity
        public var vips: [String]
        public var published: [PublishedServicePort]

        public init(_ record: ServiceRecord) {
            endpointMode = record.endpointMode
            affinity = record.affinity
            vips = record.vips
            published = record.published
        }
    }

    struct StoredMember: Codable, Equatable {
        var container: String
        var addresses: [String]
        var active: Bool
    }

    public func definition(of name: String) throws(ServiceError) -> Definition? {
        guard let record = try call({ () throws(ClusterStoreError) in try store.get(definitionKey(name)) }) else {
            return nil
        }
        return Self.decode(Definition.self, record.value)
    }

    /// Creates the definition unless another host did first; returns the one that holds.
    public func claim(_ definition: Definition, name: String) throws(ServiceError) -> Definition {
        let value = Self.encode(definition)
        switch try call({ () throws(ClusterStoreError) in try store.create(definitionKey(name), value: value) }) {
        case .written: return definition
        default:
            guard let held = try self.definition(of: name) else {
                throw ServiceError("service \(name): its cluster record vanished while being created; try again")
            }
            return held
        }
    }

    /// Widens the published ports of a held definition (a new member may publish more).
    public func update(_ definition: Definition, name: String) throws(ServiceError) {
        _ = try call({ () throws(ClusterStoreError) in
            try store.put(definitionKey(name), value: Self.encode(definition))
        })
    }

    public func deleteDefinition(of name: String) throws(ServiceError) {
        guard let current = try call({ () throws(ClusterStoreError) in try store.get(definitionKey(name)) }) else {
            return
        }
        _ = try call({ () throws(ClusterStoreError) in try store.delete(definitionKey(name), ifValue: current.value) })
    }

    /// Makes the store hold exactly `members` for this host in service `name`.
    public func syncLocalMembers(_ name: String, _ members: [ServiceMember]) throws(ServiceError) {
        let prefix = membersPrefix(name) + host + "/"
        let held = try call({ () throws(ClusterStoreError) in try store.list(prefix: prefix) }).records
        var wanted: [String: String] = [:]
        for member in members {
            let stored = StoredMember(container: member.container, addresses: member.addresses, active: member.active)
            wanted[memberKey(name, host: host, containerID: member.containerID, ifName: member.ifName)] = Self.encode(
                stored)
        }
        for record in held where wanted[record.key] != record.value {
            if wanted[record.key] == nil {
                _ = try call({ () throws(ClusterStoreError) in try store.delete(record.key, ifValue: record.value) })
            }
        }
        let current = Dictionary(held.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        for (key, value) in wanted where current[key] != value {
            _ = try call({ () throws(ClusterStoreError) in try store.put(key, value: value) })
        }
    }

    /// Every service of the network with its members on every host, by name.
    public func records() throws(ServiceError) -> [ServiceRecord] {
        let snapshot = try call({ () throws(ClusterStoreError) in try store.list(prefix: root) })
        var definitions: [String: Definition] = [:]
        var members: [String: [ServiceMember]] = [:]
        for record in snapshot.records {
            let path = record.key.dropFirst(root.count).split(separator: "/").map(String.init)
            if path.count == 2, path[0] == "services", let definition = Self.decode(Definition.self, record.value) {
                definitions[path[1]] = definition
            } else if path.count == 5, path[0] == "members",
                let stored = Self.decode(StoredMember.self, record.value)
            {
                members[path[1], default: []].append(
                    ServiceMember(
                        containerID: path[3], container: stored.container, ifName: path[4], host: path[2],
                        addresses: stored.addresses, active: stored.active))
            }
        }
        return definitions.keys.sorted().compactMap { name in
            guard let definition = definitions[name] else { return nil }
            return ServiceRecord(
                name: name, network: network, endpointMode: definition.endpointMode, affinity: definition.affinity,
                vips: definition.vips, published: definition.published,
                members: (members[name] ?? []).sorted { ($0.host, $0.containerID) < ($1.host, $1.containerID) })
        }
    }

    public func record(named name: String) throws(ServiceError) -> ServiceRecord? {
        try records().first { $0.name == name }
    }

    /// The agent's sign of life: a counter other hosts watch change.
    public func beat(_ count: UInt64) throws(ServiceError) {
        _ = try call({ () throws(ClusterStoreError) in try store.put(heartbeatsPrefix + host, value: String(count)) })
    }

    /// Every host's last heartbeat value.
    public func heartbeats() throws(ServiceError) -> [String: String] {
        let records = try call({ () throws(ClusterStoreError) in try store.list(prefix: heartbeatsPrefix) }).records
        return Dictionary(
            records.map { (String($0.key.dropFirst(heartbeatsPrefix.count)), $0.value) },
            uniquingKeysWith: { first, _ in first })
    }

    private func call<T>(_ body: () throws(ClusterStoreError) -> T) throws(ServiceError) -> T {
        do { return try body() } catch { throw ServiceError("cluster store: \(error)") }
    }

    static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
        try? JSONDecoder().decode(type, from: Data(text.utf8))
    }
}
