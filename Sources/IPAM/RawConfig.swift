import ClusterStore

// The JSON shapes on stdin, decoded leniently: every key optional, unknown keys ignored,
// null treated as absent. `IPAMSettings` turns them into validated values.

struct RawNetworkConfig: Decodable {
    var cniVersion: String?
    var name: String?
    var ipam: RawIPAM?
    var runtimeConfig: RawRuntimeConfig?
    var args: RawArgs?
    var prevResult: RawPrevResult?

    enum CodingKeys: String, CodingKey {
        case cniVersion, name, ipam, runtimeConfig, args, prevResult
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        cniVersion = try container.decodeIfPresent(String.self, forKey: .cniVersion)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        ipam = try container.decodeIfPresent(RawIPAM.self, forKey: .ipam)
        runtimeConfig = try container.decodeIfPresent(RawRuntimeConfig.self, forKey: .runtimeConfig)
        // `args` is free-form metadata for every plugin in a chain, and prevResult is
        // validated by the CNI layer; a shape IPAM does not understand is ignored, not fatal.
        args = try? container.decodeIfPresent(RawArgs.self, forKey: .args)
        prevResult = try? container.decodeIfPresent(RawPrevResult.self, forKey: .prevResult)
    }
}

struct RawIPAM: Decodable {
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

struct RawRange: Decodable {
    var subnet: String?
    var rangeStart: String?
    var rangeEnd: String?
    var gateway: String?
}

struct RawRoute: Decodable {
    var dst: String?
    var gw: String?
}

struct RawStaticAddress: Decodable {
    var address: String?
    var gateway: String?
}

struct RawDNS: Decodable {
    var nameservers: [String]?
    var domain: String?
    var search: [String]?
    var options: [String]?
}

struct RawRuntimeConfig: Decodable {
    var ipRanges: [[RawRange]]?
    var ips: [String]?
}

struct RawArgs: Decodable {
    var cni: RawCNIArgs?
}

struct RawCNIArgs: Decodable {
    var ips: [String]?
}

/// Only the addresses of a previous result matter to IPAM (static CHECK).
struct RawPrevResult: Decodable {
    struct IP: Decodable { var address: String? }
    var ips: [IP]?
}
