import ClusterStore
import IPAddressing
import JSON

/// Where an overlay network's state lives in the cluster store:
///
///     pier/overlay/<network>/network                          {"vni":…,"port":…}
///     pier/overlay/<network>/hosts/<host>                     {"host":…,"vtep":…}
///     pier/overlay/<network>/endpoints/<host>/<cid>/<ifname>  {"containerID":…,"ifname":…,"host":…,"mac":…,"ips":[…]}
///
/// One prefix per network, so one range read (or one watch) yields everything a host needs.
public struct OverlayKeys: Sendable, Hashable {
    public let network: String

    public init(network: String) { self.network = network }

    public var root: String { "pier/overlay/\(network)/" }
    public var networkRecord: String { root + "network" }
    public var hostsPrefix: String { root + "hosts/" }
    public func host(_ host: String) -> String { hostsPrefix + host }
    public var endpointsPrefix: String { root + "endpoints/" }
    public func endpoints(of host: String) -> String { endpointsPrefix + host + "/" }

    public func endpoint(host: String, containerID: String, ifname: String) -> String {
        endpoints(of: host) + containerID + "/" + Self.segment(ifname)
    }

    /// Interface names may hold bytes keys cannot; those are replaced by a stable hash (the
    /// record's value keeps the real name).
    static func segment(_ ifname: String) -> String {
        StoreKey.isValidSegment(ifname) ? ifname : "if-" + String(fnv1a(ifname), radix: 16)
    }
}

/// Which VNI and UDP port a network uses; the first host to attach writes it and every other
/// host must agree, so a typo on one host cannot split the network.
public struct NetworkRecord: StoredRecord, Sendable, Hashable {
    public var vni: UInt32
    public var port: UInt16

    public init(vni: UInt32, port: UInt16) {
        self.vni = vni
        self.port = port
    }

    var json: JSONValue { .object(["port": .integer(port), "vni": .integer(vni)]) }

    init?(json: JSONValue) {
        guard let vni = json["vni"]?.intValue.flatMap(UInt32.init(exactly:)),
            let port = json["port"]?.intValue.flatMap(UInt16.init(exactly:))
        else { return nil }
        self.init(vni: vni, port: port)
    }
}

/// A host of an overlay network and its VTEP (the underlay address remote hosts tunnel to).
public struct HostRecord: StoredRecord, Sendable, Hashable {
    public var host: String
    public var vtep: IPAddress

    public init(host: String, vtep: IPAddress) {
        self.host = host
        self.vtep = vtep
    }

    var json: JSONValue { .object(["host": .string(host), "vtep": .string(vtep.description)]) }

    init?(json: JSONValue) {
        guard let host = json["host"]?.stringValue, let vtep = json["vtep"]?.stringValue.flatMap(IPAddress.init)
        else { return nil }
        self.init(host: host, vtep: vtep)
    }
}

/// One container interface attached to an overlay network, owned by its attachment.
public struct EndpointRecord: StoredRecord, Sendable, Hashable {
    public var network: String
    public var containerID: String
    public var ifname: String
    public var host: String
    public var mac: MACAddress
    public var ips: [IPPrefix]

    public init(
        network: String, containerID: String, ifname: String, host: String, mac: MACAddress, ips: [IPPrefix]
    ) {
        self.network = network
        self.containerID = containerID
        self.ifname = ifname
        self.host = host
        self.mac = mac
        self.ips = ips
    }

    var json: JSONValue {
        .object([
            "containerID": .string(containerID), "host": .string(host), "ifname": .string(ifname),
            "ips": .array(ips.map { .string($0.description) }), "mac": .string(mac.description),
            "network": .string(network),
        ])
    }

    init?(json: JSONValue) {
        guard let network = json["network"]?.stringValue, let containerID = json["containerID"]?.stringValue,
            let ifname = json["ifname"]?.stringValue, let host = json["host"]?.stringValue,
            let mac = json["mac"]?.stringValue.flatMap(MACAddress.init), let texts = json["ips"]?.arrayValue
        else { return nil }
        var ips: [IPPrefix] = []
        for text in texts {
            guard let ip = text.stringValue.flatMap({ IPPrefix($0) }) else { return nil }
            ips.append(ip)
        }
        self.init(network: network, containerID: containerID, ifname: ifname, host: host, mac: mac, ips: ips)
    }
}

/// A record kept as JSON in the cluster store.
protocol StoredRecord {
    /// Keys in sorted order: the same record always encodes to the same bytes, which
    /// delete-if-value and "unchanged, skip the write" rely on.
    var json: JSONValue { get }
    /// Nil when a key is missing or of the wrong type.
    init?(json: JSONValue)
}

enum RecordCoding {
    static func encode(_ value: some StoredRecord) -> String { value.json.encodedString }

    static func decode<T: StoredRecord>(_ type: T.Type, _ text: String) -> T? {
        guard let document = try? JSONValue(parsing: text) else { return nil }
        return T(json: document)
    }
}

func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01b3
    }
    return hash
}
