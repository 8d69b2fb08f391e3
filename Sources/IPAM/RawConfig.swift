import CNI
import ClusterStore

// The JSON shapes on stdin, read leniently: every key optional, unknown keys ignored,
// null treated as absent; a wrongly typed key is an error naming it. `IPAMSettings` turns
// them into validated values.

struct RawNetworkConfig {
    var cniVersion: String?
    var name: String?
    var ipam: RawIPAM?
    var runtimeConfig: RawRuntimeConfig?
    var args: RawArgs?
    var prevResult: RawPrevResult?
}

struct RawIPAM {
    var type: String?
    var ranges: [[RawRange]]?
    var subnet: String?
    var rangeStart: String?
    var rangeEnd: String?
    var gateway: String?
    var routes: [RawRoute]?
    var dataDir: String?
    var resolvConf: String?
    var addresses: [RawStaticAddress]?
    var dns: RawDNS?
    var store: ClusterStoreConfig?
}

struct RawRange {
    var subnet: String?
    var rangeStart: String?
    var rangeEnd: String?
    var gateway: String?
}

struct RawRoute {
    var dst: String?
    var gw: String?
}

struct RawStaticAddress {
    var address: String?
    var gateway: String?
}

struct RawDNS {
    var nameservers: [String]?
    var domain: String?
    var search: [String]?
    var options: [String]?
}

struct RawRuntimeConfig {
    var ipRanges: [[RawRange]]?
    var ips: [String]?
}

struct RawArgs {
    var cni: RawCNIArgs?
}

struct RawCNIArgs {
    var ips: [String]?
}

/// Only the addresses of a previous result matter to IPAM (static CHECK).
struct RawPrevResult {
    struct IP { var address: String? }
    var ips: [IP]?
}

// MARK: Reading

extension RawNetworkConfig: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        cniVersion = try reader.string("cniVersion")
        name = try reader.string("name")
        ipam = try reader.read("ipam", as: RawIPAM.self)
        runtimeConfig = try reader.read("runtimeConfig", as: RawRuntimeConfig.self)
        // `args` is free-form metadata for every plugin in a chain, and prevResult is
        // validated by the CNI layer; a shape IPAM does not understand is ignored, not fatal.
        args = try? reader.read("args", as: RawArgs.self)
        prevResult = try? reader.read("prevResult", as: RawPrevResult.self)
    }
}

extension RawIPAM: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        type = try reader.string("type")
        ranges = try RawRange.sets(reader, "ranges")
        subnet = try reader.string("subnet")
        rangeStart = try reader.string("rangeStart")
        rangeEnd = try reader.string("rangeEnd")
        gateway = try reader.string("gateway")
        routes = try reader.readAll("routes", as: RawRoute.self)
        dataDir = try reader.string("dataDir")
        resolvConf = try reader.string("resolvConf")
        addresses = try reader.readAll("addresses", as: RawStaticAddress.self)
        dns = try reader.read("dns", as: RawDNS.self)
        if let store = try reader.reader("store") { self.store = try ClusterStoreConfig(store) }
    }
}

extension RawRange: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        subnet = try reader.string("subnet")
        rangeStart = try reader.string("rangeStart")
        rangeEnd = try reader.string("rangeEnd")
        gateway = try reader.string("gateway")
    }

    /// `[[range, ...], ...]`: a list of range sets, each a list of ranges.
    static func sets(_ reader: JSONReader, _ key: String) throws(CNIError) -> [[RawRange]]? {
        guard let sets = try reader.array(key) else { return nil }
        var result: [[RawRange]] = []
        for (setIndex, set) in sets.enumerated() {
            let setKey = "\(key)[\(setIndex)]"
            guard let ranges = set.arrayValue else { throw reader.mismatch(setKey, expected: "array", got: set) }
            var parsed: [RawRange] = []
            for (index, range) in ranges.enumerated() {
                let rangeKey = "\(setKey)[\(index)]"
                guard let object = range.objectValue else {
                    throw reader.mismatch(rangeKey, expected: "object", got: range)
                }
                parsed.append(
                    try RawRange(
                        JSONReader(object, path: reader.keyPath(rangeKey), code: reader.code, context: reader.context)))
            }
            result.append(parsed)
        }
        return result
    }
}

extension RawRoute: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        dst = try reader.string("dst")
        gw = try reader.string("gw")
    }
}

extension RawStaticAddress: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        address = try reader.string("address")
        gateway = try reader.string("gateway")
    }
}

extension RawDNS: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        nameservers = try reader.strings("nameservers")
        domain = try reader.string("domain")
        search = try reader.strings("search")
        options = try reader.strings("options")
    }
}

extension RawRuntimeConfig: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        ipRanges = try RawRange.sets(reader, "ipRanges")
        ips = try reader.strings("ips")
    }
}

extension RawArgs: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        cni = try reader.read("cni", as: RawCNIArgs.self)
    }
}

extension RawCNIArgs: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        ips = try reader.strings("ips")
    }
}

extension RawPrevResult: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        ips = try reader.readAll("ips", as: IP.self)
    }
}

extension RawPrevResult.IP: JSONReadable {
    init(_ reader: JSONReader) throws(CNIError) {
        address = try reader.string("address")
    }
}

extension ClusterStoreConfig {
    /// The `store` key shared by `ipam` and `vxlan-overlay`, read where both find it (IPAM is the
    /// lowest module that knows CNI and the cluster store).
    public init(_ reader: JSONReader) throws(CNIError) {
        let typeName = try reader.requiredString("type")
        guard let type = Kind(rawValue: typeName) else {
            throw reader.failure("type", "unknown store type \"\(typeName)\": want \"file\" or \"etcd\"")
        }
        self.init(
            type: type, path: try reader.string("path"), endpoints: try reader.strings("endpoints"),
            prefix: try reader.string("prefix"), timeoutMilliseconds: try reader.int("timeoutMilliseconds"),
            host: try reader.string("host"),
            security: EtcdSecurity(
                trustedCAFile: try reader.string("trustedCAFile"), certFile: try reader.string("certFile"),
                keyFile: try reader.string("keyFile"), username: try reader.string("username"),
                password: try reader.string("password")))
    }
}
