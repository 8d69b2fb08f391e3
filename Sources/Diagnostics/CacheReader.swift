import CNI
import ClusterStore
import Overlay
import PierState
import PluginSupport

/// One entry of libcni's result cache (`kind: cniCacheV1`), as far as diagnostics need it.
public struct CachedResult: Sendable, Equatable {
    public var attachment: Attachment
    public var netns: String
    public var path: String
    /// The conflist the ADD ran with (nil when the entry holds none or it does not parse).
    public var configList: NetworkConfigList.Summary?
    /// Addresses of the ADD result, CIDR notation.
    public var addresses: [String]
    /// `portMappings` capability arguments, as the runtime passed them.
    public var portMappings: [PortMapping]
}

/// A `portMappings` capability entry.
public struct PortMapping: Sendable, Equatable, Codable {
    public var hostPort: Int
    public var containerPort: Int
    public var `protocol`: String
    public var hostIP: String?
}

extension NetworkConfigList {
    /// The parts of a conflist diagnostics show: name, version, plugin types, and the keys
    /// that locate kernel objects (bridge name, lease directory, subnets).
    public struct Summary: Sendable, Equatable {
        public var name: String
        public var cniVersion: String
        public var plugins: [String]
        public var bridge: String?
        public var dataDirectory: String?
        public var subnets: [String]
        public var gateways: [String]
        public var ipMasq: Bool
        public var isolation: Bool
        /// The conflist as written.
        public var raw: JSONValue?
        /// The cluster store a plugin (vxlan-overlay, cluster IPAM) names: `file` with a path,
        /// or `etcd` with endpoints.
        public var storeType: String?
        public var storePath: String?
        public var storeEndpoints: [String]
        /// etcd's TLS files and user, under the `store` keys plugins read.
        public var storeSecurity = EtcdSecurity()

        /// Reports encode with sorted keys anyway; sorting here makes decoded reports compare equal.
        /// Secrets (an etcd store's `password`) never reach a report: they are replaced here.
        static func sortingKeys(_ value: JSONValue) -> JSONValue {
            switch value {
            case .object(let object):
                return .object(
                    JSONObject(
                        object.entries.sorted { $0.key < $1.key }.map {
                            ($0.key, $0.key == "password" ? .string("<redacted>") : sortingKeys($0.value))
                        }))
            case .array(let items): return .array(items.map(sortingKeys))
            default: return value
            }
        }

        public init(_ list: NetworkConfigList) {
            raw = (try? JSONValue(parsing: list.bytes)).map(Self.sortingKeys)
            name = list.name
            cniVersion = list.cniVersion
            plugins = list.plugins.map(\.type)
            bridge = nil
            dataDirectory = nil
            subnets = []
            gateways = []
            ipMasq = false
            isolation = true
            storeEndpoints = []
            for plugin in list.plugins {
                let raw = plugin.raw
                if let store = raw["store"]?.objectValue ?? raw["ipam"]?["store"]?.objectValue {
                    storeType = store["type"]?.stringValue ?? "file"
                    storePath = store["path"]?.stringValue
                    storeEndpoints = (store["endpoints"]?.arrayValue ?? []).compactMap(\.stringValue)
                    storeSecurity = EtcdSecurity(
                        trustedCAFile: store["trustedCAFile"]?.stringValue, certFile: store["certFile"]?.stringValue,
                        keyFile: store["keyFile"]?.stringValue, username: store["username"]?.stringValue,
                        password: store["password"]?.stringValue)
                }
                // Defaults and derived names come from the code the plugins themselves use.
                if plugin.type == "bridge" {
                    bridge = raw["bridge"]?.stringValue ?? PluginDefaults.bridgeName
                    ipMasq = raw["ipMasq"]?.boolValue ?? false
                    isolation = raw["isolation"]?.boolValue ?? PluginDefaults.bridgeIsolation
                } else if plugin.type == "vxlan-overlay" {
                    // No `bridge` key: the plugin names its bridge after the VNI.
                    bridge = raw["vni"]?.intValue.flatMap { UInt32(exactly: $0) }.map(OverlayDevices.bridgeName(vni:))
                    ipMasq = raw["ipMasq"]?.boolValue ?? false
                    isolation = PluginDefaults.overlayIsolation(ipMasq: ipMasq)
                }
                guard let ipam = raw["ipam"]?.objectValue else { continue }
                dataDirectory = ipam["dataDir"]?.stringValue ?? dataDirectory
                for set in ipam["ranges"]?.arrayValue ?? [] {
                    for range in set.arrayValue ?? [] {
                        if let subnet = range["subnet"]?.stringValue { subnets.append(subnet) }
                        if let gateway = range["gateway"]?.stringValue { gateways.append(gateway) }
                    }
                }
                if let subnet = ipam["subnet"]?.stringValue { subnets.append(subnet) }
            }
        }
    }
}

/// Reads the libcni result cache (`ResultCacheDirectory`, the runtime's format) without writing to it.
public struct ResultCacheReader: Sendable {
    let cache: ResultCacheDirectory
    public var directory: String { cache.directory }

    public init(cacheDirectory: String) { cache = ResultCacheDirectory(cacheDirectory: cacheDirectory) }

    public func path(for attachment: Attachment) -> String {
        cache.path(network: attachment.network, containerID: attachment.containerID, ifName: attachment.ifName)
    }

    public func entry(for attachment: Attachment) -> CachedResult? { read(path: path(for: attachment)) }

    /// Every readable entry, sorted by path so output is stable.
    public func all() -> [CachedResult] { cache.all().map { Self.result($0.entry, path: $0.path) } }

    public func read(path: String) -> CachedResult? { cache.read(path: path).map { Self.result($0, path: path) } }

    static func result(_ entry: ResultCacheEntry, path: String) -> CachedResult {
        let summary = (try? NetworkConfigList(bytes: entry.config)).map(NetworkConfigList.Summary.init)
        let addresses = (entry.result?["ips"]?.arrayValue ?? []).compactMap { $0["address"]?.stringValue }
        let mappings = (entry.capabilityArgs["portMappings"]?.arrayValue ?? []).compactMap { item in
            PortMapping(
                hostPort: item["hostPort"]?.intValue ?? 0, containerPort: item["containerPort"]?.intValue ?? 0,
                protocol: item["protocol"]?.stringValue ?? "tcp", hostIP: item["hostIP"]?.stringValue)
        }
        return CachedResult(
            attachment: Attachment(network: entry.networkName, containerID: entry.containerID, ifName: entry.ifName),
            netns: entry.netns, path: path, configList: summary, addresses: addresses, portMappings: mappings)
    }
}

extension CachedResult {
    /// Pier's bridge plugin leaves a host veth tagged with the attachment for as long as the
    /// container's interface exists.
    var usesHostVeth: Bool { configList?.plugins.first == "bridge" }
}
