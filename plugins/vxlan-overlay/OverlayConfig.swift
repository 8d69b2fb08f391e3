import CNI
import ClusterStore
import IPAM
import Overlay
import PluginSupport

/// The `vxlan-overlay` plugin's own keys. Unknown keys are ignored; everything that can be
/// refused without touching the kernel or the store is refused by `validate()`.
struct OverlayConfig: JSONReadable {
    var vni: Int
    /// Interface name or local address whose IP is this host's VTEP; nil: the default route's.
    var underlay: String?
    var port: Int = 4789
    var mtu: Int?
    var store = ClusterStoreConfig(type: .file)
    var isGateway = false
    var isDefaultGateway = false
    var ipMasq = false
    var forceAddress = false
    var hairpinMode = false
    /// Pier's own, as on `bridge`: nothing is routed out of the overlay bridge or into it.
    var isInternal = false
    /// Runtime state (the lock shared with `pier agent`): `<runDir>/overlay/`.
    var runDir = HostLock.defaultRunDirectory

    init(_ reader: JSONReader) throws(CNIError) {
        vni = try reader.requiredInt("vni")
        underlay = try reader.string("underlay")
        port = try reader.int("port") ?? 4789
        mtu = try reader.int("mtu")
        if let store = try reader.reader("store") { self.store = try ClusterStoreConfig(store) }
        isGateway = try reader.bool("isGateway") ?? false
        isDefaultGateway = try reader.bool("isDefaultGateway") ?? false
        ipMasq = try reader.bool("ipMasq") ?? false
        forceAddress = try reader.bool("forceAddress") ?? false
        hairpinMode = try reader.bool("hairpinMode") ?? false
        isInternal = try reader.bool("internal") ?? false
        runDir = try reader.string("runDir") ?? HostLock.defaultRunDirectory
        // As with bridge: a default gateway is a gateway.
        if isDefaultGateway { isGateway = true }
    }

    var vniValue: UInt32 { UInt32(clamping: vni) }

    /// DAD stays off: IPAM in cluster mode made the address unique across hosts.
    var l3: BridgedL3 {
        BridgedL3(isGateway: isGateway, isDefaultGateway: isDefaultGateway, forceAddress: forceAddress)
    }

    func validate(_ request: CNIRequest) throws(CNIError) {
        guard (1...16_777_215).contains(vni) else {
            throw CNIError(.invalidNetworkConfig, "vni \(vni) is out of range (1..16777215)")
        }
        guard (1...65535).contains(port) else { throw CNIError(.invalidNetworkConfig, "port \(port) is out of range") }
        if let mtu, mtu < 576 || mtu > 65535 {
            throw CNIError(.invalidNetworkConfig, "mtu \(mtu) is out of range (576..65535)")
        }
        guard runDir.hasPrefix("/"), !runDir.split(separator: "/").contains("..") else {
            throw CNIError(.invalidNetworkConfig, "runDir \"\(runDir)\" must be an absolute path without ..")
        }
        if let underlay, underlay.isEmpty {
            throw CNIError(.invalidNetworkConfig, "underlay must name an interface or an address")
        }
        if store.type == .file, let path = store.path, !path.hasPrefix("/") {
            throw CNIError(.invalidNetworkConfig, "store.path \"\(path)\" must be absolute")
        }
        if let host = store.host, !StoreKey.isValidSegment(host) {
            throw CNIError(.invalidNetworkConfig, "store.host \"\(host)\" must match [A-Za-z0-9_.:-]+")
        }
        guard let ipam = request.config.ipam else {
            throw CNIError(.invalidNetworkConfig, "vxlan-overlay needs an \"ipam\" section of type \"ipam\"")
        }
        guard ipam.type == "ipam" else {
            throw CNIError(
                .invalidNetworkConfig,
                "ipam.type \"\(ipam.type)\" cannot allocate across hosts; use \"ipam\" (cluster mode)")
        }
        if let ipamStore = try ipamStoreConfig(request), !ipamStore.sameLocation(as: store) {
            throw CNIError(.invalidNetworkConfig, "ipam.store must be the overlay's store (or left out)")
        }
    }

    private func ipamStoreConfig(_ request: CNIRequest) throws(CNIError) -> ClusterStoreConfig? {
        guard let store = try request.config.ipam?.reader.reader("store") else { return nil }
        return try ClusterStoreConfig(store)
    }
}

extension CNIRequest {
    /// The request the IPAM delegate sees: `ipam.store` (and its host) filled from the
    /// overlay's `store`, so addresses are allocated cluster-wide from the one store without
    /// repeating it in the config.
    func withClusterIPAM(_ config: OverlayConfig) throws(CNIError) -> CNIRequest {
        var raw = self.config.raw
        guard var ipam = raw["ipam"]?.objectValue else { return self }
        var store = ipam["store"]?.objectValue ?? raw["store"]?.objectValue ?? ["type": .string("file")]
        if store["host"] == nil, let host = config.store.host { store["host"] = .string(host) }
        ipam["store"] = .object(store)
        raw["ipam"] = .object(ipam)
        var copy = self
        copy.config = try NetworkConfig(bytes: JSONValue.object(raw).encodedBytes)
        return copy
    }
}
