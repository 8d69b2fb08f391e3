import IPAddressing

/// The three wire shapes a result has had over the spec's history.
enum ResultFormat {
    /// 0.1.0 and 0.2.0: `ip4`/`ip6` objects, no interfaces.
    case legacy
    /// 0.3.0, 0.3.1 and 0.4.0: `ips[]` entries carry `version`; interfaces lack mtu, socketPath, pciID.
    case versioned
    /// 1.0.0 and 1.1.0.
    case current

    init(version: String) throws(CNIError) {
        switch version {
        case "0.1.0", "0.2.0": self = .legacy
        case "0.3.0", "0.3.1", "0.4.0": self = .versioned
        case "1.0.0", "1.1.0": self = .current
        default: throw CNIError(.incompatibleVersion, "unsupported CNI result version \"\(version)\"")
        }
    }
}

// MARK: - Output

extension CNIResult {
    /// The result as it must be printed for `version` (default: its own `cniVersion`), with Go's
    /// key order and Go's omission of empty fields.
    public func json(version: String? = nil) throws(CNIError) -> JSONValue {
        let version = version ?? cniVersion
        switch try ResultFormat(version: version) {
        case .legacy: return try legacyJSON(version: version)
        case .versioned: return modernJSON(version: version, versionedIPs: true)
        case .current: return modernJSON(version: version, versionedIPs: false)
        }
    }

    public func encodedBytes(version: String? = nil) throws(CNIError) -> [UInt8] {
        try json(version: version).encodedBytes
    }

    /// This result relabelled with `version`, after checking that it can be expressed in it.
    public func converted(to version: String) throws(CNIError) -> CNIResult {
        _ = try json(version: version)
        var copy = self
        copy.cniVersion = version
        return copy
    }

    private func modernJSON(version: String, versionedIPs: Bool) -> JSONValue {
        var object = JSONObject()
        object["cniVersion"] = .string(version)
        if !interfaces.isEmpty {
            object["interfaces"] = .array(interfaces.map { $0.json(includeNewFields: !versionedIPs) })
        }
        if !ips.isEmpty {
            object["ips"] = .array(ips.map { $0.json(includeVersion: versionedIPs) })
        }
        if !routes.isEmpty {
            object["routes"] = .array(routes.map { $0.json(full: true) })
        }
        if !dns.isEmpty { object["dns"] = dns.json }
        return .object(object)
    }

    /// Only the first address of each family survives, and routes follow their destination's family;
    /// a result without any address has nothing to say in this form.
    private func legacyJSON(version: String) throws(CNIError) -> JSONValue {
        let ip4 = ips.first { $0.family == .v4 }
        let ip6 = ips.first { $0.family == .v6 }
        guard ip4 != nil || ip6 != nil else {
            throw CNIError(
                .incompatibleVersion, "cannot convert: no valid IP addresses",
                details: "a result without IP addresses cannot be expressed in CNI version \(version)")
        }
        func block(_ ip: IPConfig, family: IPFamily) -> JSONValue {
            var object = JSONObject()
            object["ip"] = .string(ip.address.description)
            if let gateway = ip.gateway { object["gateway"] = .string(gateway.description) }
            let familyRoutes = routes.filter { $0.dst.family == family }
            if !familyRoutes.isEmpty { object["routes"] = .array(familyRoutes.map { $0.json(full: false) }) }
            return .object(object)
        }
        var object = JSONObject()
        object["cniVersion"] = .string(version)
        if let ip4 { object["ip4"] = block(ip4, family: .v4) }
        if let ip6 { object["ip6"] = block(ip6, family: .v6) }
        if !dns.isEmpty { object["dns"] = dns.json }
        return .object(object)
    }
}

extension CNIResult.Interface {
    func json(includeNewFields: Bool) -> JSONValue {
        var object = JSONObject()
        object["name"] = .string(name)
        if let mac, !mac.isEmpty { object["mac"] = .string(mac) }
        if includeNewFields, let mtu, mtu != 0 { object["mtu"] = .integer(mtu) }
        if let sandbox, !sandbox.isEmpty { object["sandbox"] = .string(sandbox) }
        if includeNewFields, let socketPath, !socketPath.isEmpty { object["socketPath"] = .string(socketPath) }
        if includeNewFields, let pciID, !pciID.isEmpty { object["pciID"] = .string(pciID) }
        return .object(object)
    }
}

extension CNIResult.IPConfig {
    func json(includeVersion: Bool) -> JSONValue {
        var object = JSONObject()
        if includeVersion { object["version"] = .string(family == .v4 ? "4" : "6") }
        if let interface { object["interface"] = .integer(interface) }
        object["address"] = .string(address.description)
        if let gateway { object["gateway"] = .string(gateway.description) }
        return .object(object)
    }
}

extension CNIResult.Route {
    /// Go shares one route type across versions, so the 1.1 fields go out in every non-legacy form.
    func json(full: Bool) -> JSONValue {
        var object = JSONObject()
        object["dst"] = .string(dst.description)
        if let gw { object["gw"] = .string(gw.description) }
        guard full else { return .object(object) }
        if let mtu, mtu != 0 { object["mtu"] = .integer(mtu) }
        if let advmss, advmss != 0 { object["advmss"] = .integer(advmss) }
        if let priority, priority != 0 { object["priority"] = .integer(priority) }
        if let table { object["table"] = .integer(table) }
        if let scope { object["scope"] = .integer(scope) }
        return .object(object)
    }
}

extension CNIResult.DNS {
    var json: JSONValue {
        var object = JSONObject()
        if !nameservers.isEmpty { object["nameservers"] = .array(nameservers.map { .string($0) }) }
        if !domain.isEmpty { object["domain"] = .string(domain) }
        if !search.isEmpty { object["search"] = .array(search.map { .string($0) }) }
        if !options.isEmpty { object["options"] = .array(options.map { .string($0) }) }
        return .object(object)
    }
}

// MARK: - Input

extension CNIResult {
    /// Reads a result of any supported version into the 1.1 model. `defaultVersion` applies when the
    /// document has no `cniVersion` (libcni assumes the config's version; cni#895).
    public init(json value: JSONValue, defaultVersion: String) throws(CNIError) {
        let reader = try JSONReader(value, code: .decodingFailure, context: "failed to decode result")
        let version = try reader.string("cniVersion").flatMap { $0.isEmpty ? nil : $0 } ?? defaultVersion
        self.init(cniVersion: version)
        switch try ResultFormat(version: version) {
        case .legacy: try readLegacy(reader)
        case .versioned, .current: try readModern(reader)
        }
        if let dnsReader = try reader.reader("dns") { dns = try CNIResult.DNS(dnsReader) }
    }

    public init(bytes: [UInt8], defaultVersion: String) throws(CNIError) {
        let value: JSONValue
        do { value = try JSONValue(parsing: bytes) } catch {
            throw CNIError(.decodingFailure, "failed to decode result: \(error)")
        }
        try self.init(json: value, defaultVersion: defaultVersion)
    }

    /// Both versioned and current forms are read the same way: `version` keys and fields newer than the
    /// document's version are accepted and interpreted, since being lenient costs nothing here.
    private mutating func readModern(_ reader: JSONReader) throws(CNIError) {
        for item in try reader.readers("interfaces") ?? [] {
            interfaces.append(
                Interface(
                    name: try item.string("name") ?? "", mac: try item.string("mac"), mtu: try item.int("mtu"),
                    sandbox: try item.string("sandbox"), socketPath: try item.string("socketPath"),
                    pciID: try item.string("pciID")))
        }
        for item in try reader.readers("ips") ?? [] {
            guard let address = try item.prefix("address") else { throw item.failure("address", "missing") }
            if let version = try item.string("version"), version != (address.family == .v4 ? "4" : "6") {
                throw item.failure("version", "\"\(version)\" does not match address \(address)")
            }
            // Old plugins wrote -1 for "no interface".
            let index = try item.int("interface").flatMap { $0 < 0 ? nil : $0 }
            if let index, index >= interfaces.count, !interfaces.isEmpty {
                throw item.failure("interface", "index \(index) out of range")
            }
            ips.append(
                IPConfig(address: address, gateway: try CNIResult.optionalAddress(item, "gateway"), interface: index))
        }
        for item in try reader.readers("routes") ?? [] {
            routes.append(try Route(item))
        }
    }

    private mutating func readLegacy(_ reader: JSONReader) throws(CNIError) {
        for key in ["ip4", "ip6"] {
            guard let block = try reader.reader(key) else { continue }
            guard let address = try block.prefix("ip") else { throw block.failure("ip", "missing") }
            ips.append(IPConfig(address: address, gateway: try CNIResult.optionalAddress(block, "gateway")))
            for item in try block.readers("routes") ?? [] {
                let route = try Route(item)
                routes.append(Route(dst: route.dst, gw: route.gw))
            }
        }
    }

    /// Go's `net.IP` reads an empty string as "no address".
    static func optionalAddress(_ reader: JSONReader, _ key: String) throws(CNIError) -> IPAddress? {
        if try reader.string(key)?.isEmpty == true { return nil }
        return try reader.address(key)
    }
}

extension CNIResult.Route {
    init(_ reader: JSONReader) throws(CNIError) {
        guard let dst = try reader.prefix("dst") else { throw reader.failure("dst", "missing") }
        self.init(
            dst: dst, gw: try CNIResult.optionalAddress(reader, "gw"), mtu: try reader.int("mtu"),
            advmss: try reader.int("advmss"), priority: try reader.int("priority"), table: try reader.int("table"),
            scope: try reader.int("scope"))
    }
}

extension CNIResult.DNS {
    init(_ reader: JSONReader) throws(CNIError) {
        self.init(
            nameservers: try reader.strings("nameservers") ?? [], domain: try reader.string("domain") ?? "",
            search: try reader.strings("search") ?? [], options: try reader.strings("options") ?? [])
    }
}
