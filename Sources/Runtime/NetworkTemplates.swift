import CNI
import IPAddressing

/// The kinds of network `pier network create` writes, each one plugin of Pier's.
public enum NetworkDriver: String, Sendable, CaseIterable {
    case bridge
    case macvlan
    case vxlanOverlay = "vxlan-overlay"
    case hostDevice = "host-device"

    /// Drivers that get a subnet of their own when none is given; macvlan and host-device join a
    /// segment someone else numbers, so they get IPAM only from `--subnet`.
    var picksSubnet: Bool { self == .bridge || self == .vxlanOverlay }
}

/// One `--subnet` of a network with the `--gateway` and `--ip-range` that fall inside it.
public struct SubnetRequest: Sendable, Equatable {
    public var subnet: IPPrefix
    public var gateway: IPAddress?
    public var ipRange: IPPrefix?

    public init(subnet: IPPrefix, gateway: IPAddress? = nil, ipRange: IPPrefix? = nil) {
        self.subnet = subnet
        self.gateway = gateway
        self.ipRange = ipRange
    }
}

/// What `pier network create` was asked for.
public struct NetworkSpec: Sendable {
    public var name: String
    public var driver: NetworkDriver
    public var subnets: [SubnetRequest]
    public var ipv6: Bool
    public var isInternal: Bool
    /// Driver keys (`--opt`): bridge name, MTU, parent, VNI, …; see `NetworkTemplates.driverKeys`.
    public var options: [(String, String)]
    /// IPAM keys (`--ipam-opt`), e.g. `dataDir`.
    public var ipamOptions: [(String, String)]
    public var ipamDriver: String
    public var labels: [(String, String)]
    /// `--dns`: the name service's upstreams for this network; `--dns-search`, `--dns-option`: what
    /// every container's resolv.conf gets; `--dns-opt`: other keys of the name service (`domainName`, `dataDir`).
    public var dnsServers: [IPAddress] = []
    public var dnsSearch: [String] = []
    public var dnsOptions: [String] = []
    public var nameServiceOptions: [(String, String)] = []

    public init(name: String, driver: NetworkDriver = .bridge) {
        self.name = name
        self.driver = driver
        self.subnets = []
        self.ipv6 = false
        self.isInternal = false
        self.options = []
        self.ipamOptions = []
        self.ipamDriver = "ipam"
        self.labels = []
    }
}

/// The conflists `pier network create` writes: plain CNI that libcni runs unchanged, with pier's own
/// facts (driver, labels, internal) under the top-level key `pier`, which libcni and the plugins ignore.
public enum NetworkTemplates {
    /// The chained name-service plugin (registers a container's name and aliases, answers DNS on the
    /// gateway). A conflist includes it only when a plugin of this type is on pier's CNI path.
    public static let nameServicePluginType = "names"

    /// The top-level key of pier's own facts about a network it created.
    public static let metadataKey = "pier"

    /// `--opt` keys per driver, each with the config key it becomes (Docker's option names too).
    static let driverKeys: [NetworkDriver: [String: String]] = [
        .bridge: [
            "bridge": "bridge", "com.docker.network.bridge.name": "bridge", "mtu": "mtu",
            "com.docker.network.driver.mtu": "mtu", "hairpinMode": "hairpinMode", "isolation": "isolation",
            "vlan": "vlan",
        ],
        .macvlan: ["parent": "master", "master": "master", "mode": "mode", "macvlan_mode": "mode", "mtu": "mtu"],
        .vxlanOverlay: [
            "vni": "vni", "underlay": "underlay", "parent": "underlay", "port": "port", "mtu": "mtu",
            "store": "store", "runDir": "runDir",
        ],
        .hostDevice: ["device": "device", "parent": "device", "hwaddr": "hwaddr", "pciBusID": "pciBusID"],
    ]

    /// `--dns-opt` keys: the `names` plugin's own.
    static let nameServiceKeys: Set<String> = ["domainName", "dataDir"]

    static let integerKeys: Set<String> = ["mtu", "vni", "port", "vlan"]
    static let booleanKeys: Set<String> = ["hairpinMode", "isolation"]

    /// The conflist for `spec` (its subnets already complete). `nameService`: chain the name service.
    public static func conflist(_ spec: NetworkSpec, nameService: Bool) throws(RuntimeError) -> JSONValue {
        var main = JSONObject()
        main["type"] = .string(spec.driver.rawValue)
        let keys = driverKeys[spec.driver] ?? [:]
        for (key, text) in spec.options {
            guard let configKey = keys[key] else {
                throw RuntimeError.invalidArgument(
                    "--opt \(key): not an option of the \(spec.driver.rawValue) driver (known: "
                        + keys.keys.sorted().joined(separator: ", ") + ")")
            }
            main[configKey] = try value(configKey, text, option: key)
        }
        let isInternal = spec.isInternal
        switch spec.driver {
        case .bridge:
            if main["bridge"] == nil { main["bridge"] = .string(bridgeName(for: spec.name)) }
            // Internal: the gateway stays (the name service answers there), but nothing leaves.
            main["isGateway"] = .bool(true)
            main["isDefaultGateway"] = .bool(!isInternal)
            main["ipMasq"] = .bool(!isInternal)
            // And no route out helps: the bridge plugin drops whatever would be forwarded in or out.
            if isInternal { main["internal"] = .bool(true) }
            if main["hairpinMode"] == nil { main["hairpinMode"] = .bool(true) }
            main["capabilities"] = .object(["ips": .bool(true), "mac": .bool(true)])
        case .vxlanOverlay:
            if main["vni"] == nil { main["vni"] = .integer(vni(for: spec.name)) }
            if case .string(let path)? = main["store"] {
                main["store"] = .object(["type": .string("file"), "path": .string(path)])
            }
            main["isGateway"] = .bool(true)
            main["isDefaultGateway"] = .bool(!isInternal)
            main["ipMasq"] = .bool(!isInternal)
            if isInternal { main["internal"] = .bool(true) }
            main["capabilities"] = .object(["mac": .bool(true)])
        case .macvlan:
            if main["mode"] == nil { main["mode"] = .string("bridge") }
            main["capabilities"] = .object(["mac": .bool(true)])
        case .hostDevice:
            guard main["device"] != nil || main["hwaddr"] != nil || main["pciBusID"] != nil else {
                throw RuntimeError.invalidArgument(
                    "the host-device driver needs the device to move: --opt device=NAME (or hwaddr=, pciBusID=)")
            }
        }
        if !spec.subnets.isEmpty { main["ipam"] = .object(try ipam(spec)) }

        var plugins: [JSONValue] = [.object(main)]
        if spec.driver == .bridge && !isInternal {
            plugins.append(
                .object(["type": .string("portmap"), "capabilities": .object(["portMappings": .bool(true)])]))
        }
        let wantsDNS =
            !spec.dnsServers.isEmpty || !spec.dnsSearch.isEmpty || !spec.dnsOptions.isEmpty
            || !spec.nameServiceOptions.isEmpty
        if nameService && spec.driver != .hostDevice && !spec.subnets.isEmpty {
            var names: JSONObject = ["type": .string(nameServicePluginType)]
            if isInternal { names["internal"] = .bool(true) }
            if !spec.dnsServers.isEmpty {
                guard !isInternal else {
                    throw RuntimeError.invalidArgument("--dns: an --internal network forwards no query anywhere")
                }
                names["upstreams"] = .array(spec.dnsServers.map { .string($0.description) })
            }
            if !spec.dnsSearch.isEmpty { names["search"] = .array(spec.dnsSearch.map { .string($0) }) }
            if !spec.dnsOptions.isEmpty { names["options"] = .array(spec.dnsOptions.map { .string($0) }) }
            for (key, value) in spec.nameServiceOptions {
                guard nameServiceKeys.contains(key) else {
                    throw RuntimeError.invalidArgument(
                        "--dns-opt \(key): not a key of the name service (known: "
                            + nameServiceKeys.sorted().joined(separator: ", ") + ")")
                }
                names[key] = .string(value)
            }
            // An overlay spans hosts: its names are shared through the store its endpoints are in.
            if spec.driver == .vxlanOverlay { names["store"] = main["store"] ?? .object(["type": .string("file")]) }
            names["capabilities"] = .object(["aliases": .bool(true), "dns": .bool(true)])
            plugins.append(.object(names))
        } else if wantsDNS {
            throw RuntimeError.invalidArgument(
                "--dns, --dns-search, --dns-option and --dns-opt need the name service: a "
                    + (spec.driver == .hostDevice ? "network of another driver" : "`names` plugin on the CNI path")
                    + " and a subnet")
        }

        var metadata: JSONObject = ["driver": .string(spec.driver.rawValue), "internal": .bool(isInternal)]
        if !spec.labels.isEmpty {
            metadata["labels"] = .object(JSONObject(spec.labels.map { ($0.0, JSONValue.string($0.1)) }))
        }
        // libcni before 1.2 reads only `cniVersion` (and refuses 1.1.0 results); newer libcni and pier take
        // the newest of `cniVersions` they support.
        return .object([
            "cniVersion": .string("1.0.0"), "cniVersions": .array(["0.4.0", "1.0.0", "1.1.0"].map { .string($0) }),
            "name": .string(spec.name),
            metadataKey: .object(metadata), "plugins": .array(plugins),
        ])
    }

    private static func value(_ key: String, _ text: String, option: String) throws(RuntimeError) -> JSONValue {
        if integerKeys.contains(key) {
            guard let number = Int(text), number >= 0 else {
                throw RuntimeError.invalidArgument("--opt \(option)=\(text): expected a number")
            }
            return .integer(number)
        }
        if booleanKeys.contains(key) {
            guard let flag = Bool(text) else {
                throw RuntimeError.invalidArgument("--opt \(option)=\(text): expected true or false")
            }
            return .bool(flag)
        }
        return .string(text)
    }

    /// One range set per subnet (Pier's `ipam` allocates one address from each set).
    private static func ipam(_ spec: NetworkSpec) throws(RuntimeError) -> JSONObject {
        var ipam: JSONObject = ["type": .string(spec.ipamDriver)]
        for (key, text) in spec.ipamOptions { ipam[key] = .string(text) }
        var sets: [JSONValue] = []
        for request in spec.subnets {
            var range: JSONObject = ["subnet": .string(request.subnet.network.description)]
            if let ipRange = request.ipRange {
                range["rangeStart"] = .string(max(ipRange.firstAddress, firstHost(request.subnet)).description)
                range["rangeEnd"] = .string(ipRange.lastAddress.description)
            }
            if let gateway = request.gateway { range["gateway"] = .string(gateway.description) }
            sets.append(.array([.object(range)]))
        }
        ipam["ranges"] = .array(sets)
        if spec.driver == .macvlan && !spec.isInternal {
            ipam["routes"] = .array(
                spec.subnets.map { .object(["dst": .string($0.subnet.family == .v4 ? "0.0.0.0/0" : "::/0")]) })
        }
        return ipam
    }

    private static func firstHost(_ subnet: IPPrefix) -> IPAddress {
        subnet.firstAddress.advanced(by: 1) ?? subnet.firstAddress
    }

    /// `pbr-` and 8 hex digits of the name's hash: Linux allows 15 bytes, network names are longer.
    public static func bridgeName(for network: String) -> String {
        "pbr-" + String(SHA512.hex(SHA512.hash(Array(network.utf8)).prefix(4)))
    }

    /// A VNI from the name's hash, the same on every host that creates the network by that name.
    static func vni(for network: String) -> Int {
        let hash = SHA512.hash(Array(network.utf8))
        let value = (Int(hash[0]) << 16) | (Int(hash[1]) << 8) | Int(hash[2])
        return 4097 + value % 16_000_000
    }

    /// The subnets a network's IPAM hands out from (`ranges` and the older single `subnet`).
    public static func subnets(of list: NetworkConfigList) -> [IPPrefix] {
        var found: [IPPrefix] = []
        for plugin in list.plugins {
            guard let ipam = plugin.raw["ipam"]?.objectValue else { continue }
            for set in ipam["ranges"]?.arrayValue ?? [] {
                for range in set.arrayValue ?? [] {
                    if let prefix = range["subnet"]?.stringValue.flatMap({ IPPrefix($0) }) { found.append(prefix) }
                }
            }
            if let prefix = ipam["subnet"]?.stringValue.flatMap({ IPPrefix($0) }) { found.append(prefix) }
        }
        return found
    }

    /// pier's facts about a network it created (nil for any other config).
    public static func metadata(of list: NetworkConfigList) -> JSONObject? {
        (try? JSONValue(parsing: list.bytes))?[metadataKey]?.objectValue
    }

    /// Whether the network is `--internal`: nothing leaves it, so nothing may be published on it.
    public static func isInternal(_ list: NetworkConfigList) -> Bool {
        metadata(of: list)?["internal"]?.boolValue == true
    }

    /// The driver `network ls` shows: pier's record of it, else the first plugin's type.
    public static func driver(of list: NetworkConfigList) -> String {
        metadata(of: list)?["driver"]?.stringValue ?? list.plugins.first?.type ?? ""
    }
}
