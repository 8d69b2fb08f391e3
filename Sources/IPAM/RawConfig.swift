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
