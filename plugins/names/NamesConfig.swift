import CNI
import ClusterStore
import IPAM
import IPAddressing
import NameService
import PierState

/// What one `names` invocation asks for, validated before anything is written.
struct NamesConfig {
    static let defaultDomainName = "dns.pier"

    var domainName = Self.defaultDomainName
    var isInternal = false
    var upstreams: [DNSUpstream] = []
    var dataDirectory = DefaultPaths.nameServiceDirectory
    /// The network's extra search domains and resolv.conf options, for the result's DNS.
    var search: [String] = []
    var options: [String] = []
    /// The container's own (the `dns` capability: `servers`, `searches`, `options`).
    var containerUpstreams: [DNSUpstream] = []
    var containerSearch: [String] = []
    var containerOptions: [String] = []
    /// `store` (the overlay's cluster store): names are shared with the network's other hosts.
    var store: (config: ClusterStoreConfig, json: JSONValue)?

    init(_ request: CNIRequest) throws(CNIError) {
        let reader = request.config.reader
        dataDirectory = try Self.dataDirectory(request)
        if let domain = try reader.string("domainName"), !domain.isEmpty {
            let trimmed = domain.hasSuffix(".") ? String(domain.dropLast()) : domain
            guard NameRecord.isValidName(trimmed) else {
                throw reader.failure("domainName", "\"\(domain)\" is not a DNS name")
            }
            domainName = trimmed
        }
        isInternal = try reader.bool("internal") ?? false
        for text in try reader.strings("upstreams") ?? [] {
            guard let upstream = DNSUpstream(text) else {
                throw reader.failure("upstreams", "\"\(text)\" is not an address or address:port")
            }
            upstreams.append(upstream)
        }
        if isInternal && !upstreams.isEmpty {
            throw reader.failure("upstreams", "an internal network forwards nowhere; drop upstreams or internal")
        }
        if let storeReader = try reader.reader("store") {
            store = (try ClusterStoreConfig(storeReader), .object(storeReader.object))
        }
        search = try reader.strings("search") ?? []
        options = try reader.strings("options") ?? []
        if let dns = try request.config.runtimeConfigReader.reader("dns") {
            for text in try dns.strings("servers") ?? [] {
                guard let address = IPAddress(text) else {
                    throw dns.failure("servers", "\"\(text)\" is not an IP address")
                }
                containerUpstreams.append(DNSUpstream(address: address))
            }
            containerSearch = try dns.strings("searches") ?? []
            containerOptions = try dns.strings("options") ?? []
        }
        for domain in search + containerSearch {
            guard NameRecord.isValidName(domain.hasSuffix(".") ? String(domain.dropLast()) : domain) else {
                throw CNIError(.invalidNetworkConfig, "names: search domain \"\(domain)\" is not a DNS name")
            }
        }
    }

    /// `dataDir` alone, for DEL and GC, which must work whatever else the config holds.
    static func dataDirectory(_ request: CNIRequest) throws(CNIError) -> String {
        let reader = request.config.reader
        guard let text = try reader.string("dataDir"), !text.isEmpty else { return DefaultPaths.nameServiceDirectory }
        guard text.hasPrefix("/") else { throw reader.failure("dataDir", "\"\(text)\" must be an absolute path") }
        return text
    }
}

/// The names an attachment is registered under, from where runtimes put them:
/// - the container name: `runtimeConfig.name`, else CNI_ARGS `K8S_POD_NAME` (what Podman's CNI
///   backend passes for the container name);
/// - aliases: the `aliases` capability, `runtimeConfig.aliases`, either Podman's form
///   `{"<network>": ["a", "b"]}` (only this network's list counts) or a plain list;
/// - the hostname: `runtimeConfig.hostname`.
enum AttachmentNames {
    static func names(_ request: CNIRequest) throws(CNIError) -> [String] {
        let runtime = request.config.runtimeConfigReader
        var names: [String] = []
        func add(_ name: String, _ source: String, _ code: CNIErrorCode = .invalidNetworkConfig) throws(CNIError) {
            guard NameRecord.isValidName(name) else {
                throw CNIError(
                    code, "\(source): \"\(name)\" is not a valid DNS name",
                    details: "names are dot-separated labels of letters, digits, '-' and '_', 1-63 bytes each")
            }
            if !names.contains(where: { $0.lowercased() == name.lowercased() }) { names.append(name) }
        }
        if let name = try runtime.string("name"), !name.isEmpty {
            try add(name, "runtimeConfig.name")
        } else if let name = try request.environment.args()["K8S_POD_NAME"], !name.isEmpty {
            try add(name, "CNI_ARGS K8S_POD_NAME", .invalidEnvironmentVariables)
        }
        if let value = runtime.value("aliases") {
            let list: [JSONValue]
            if let perNetwork = value.objectValue {
                list = perNetwork[request.config.name]?.arrayValue ?? []
            } else if let plain = value.arrayValue {
                list = plain
            } else {
                throw runtime.mismatch("aliases", expected: "an object of lists or a list", got: value)
            }
            for alias in list {
                guard let text = alias.stringValue else {
                    throw runtime.mismatch("aliases", expected: "strings", got: alias)
                }
                try add(text, "runtimeConfig.aliases")
            }
        }
        if let hostname = try runtime.string("hostname"), !hostname.isEmpty {
            try add(hostname, "runtimeConfig.hostname")
        }
        return names
    }
}
