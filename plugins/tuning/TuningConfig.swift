import CNI
import IPAddressing

/// What one `tuning` invocation asks for, validated before anything is touched.
///
/// Keys and their meaning are the reference plugin's. Every value may also come from
/// `args.cni.<key>` (the args convention), which wins over the plugin's own key; `sysctl`
/// entries from `args.cni.sysctl` are merged over the config's. The MAC is taken, each source
/// overriding the previous one, from `mac`, `CNI_ARGS` `MAC=`, the `mac` capability
/// (`runtimeConfig.mac`) and `args.cni.mac`, the reference's order.
struct TuningSettings {
    static let defaultDataDirectory = "/run/cni/tuning"

    struct SysctlSetting {
        var key: SysctlKey
        var value: String
    }

    var sysctls: [SysctlSetting] = []
    var mac: MACAddress?
    var mtu: UInt32?
    var promiscuous: Bool?
    var allMulticast: Bool?
    var transmitQueueLength: UInt32?
    var dataDirectory = Self.defaultDataDirectory

    var changesLink: Bool {
        mac != nil || mtu != nil || promiscuous != nil || allMulticast != nil || transmitQueueLength != nil
    }

    var isEmpty: Bool { sysctls.isEmpty && !changesLink }

    init(_ request: CNIRequest) throws {
        let config = request.config.raw
        dataDirectory = try Self.dataDirectory(config)
        let overrides = try Self.object(request.config.args?["cni"], "args.cni") ?? JSONObject()

        var entries: [(String, String)] = []
        for source in [(config["sysctl"], "sysctl"), (overrides["sysctl"], "args.cni.sysctl")] {
            for (key, value) in try Self.object(source.0, source.1) ?? JSONObject() {
                guard let text = value.stringValue else {
                    throw CNIError(.invalidNetworkConfig, "\(source.1).\(key): expected a string value")
                }
                entries.removeAll { $0.0 == key }
                entries.append((key, text))
            }
        }
        for (key, value) in entries {
            let resolved = try SysctlKey(key, ifName: request.ifName)
            if let other = sysctls.first(where: { $0.key.path == resolved.path }) {
                throw CNIError(
                    .invalidNetworkConfig,
                    "sysctl keys \"\(other.key.key)\" and \"\(key)\" name the same entry \(resolved.dotted)")
            }
            sysctls.append(SysctlSetting(key: resolved, value: value))
        }

        mtu = try Self.mtu(overrides["mtu"] ?? config["mtu"], overrides["mtu"] != nil ? "args.cni.mtu" : "mtu")
        promiscuous = try Self.bool(overrides["promisc"] ?? config["promisc"], "promisc")
        allMulticast = try Self.bool(overrides["allmulti"] ?? config["allmulti"], "allmulti")
        let queueKey = overrides["txQLen"] != nil ? "args.cni.txQLen" : "txQLen"
        if let length = try Self.integer(overrides["txQLen"] ?? config["txQLen"], queueKey) {
            guard (0...Int(UInt32.max)).contains(length) else {
                throw CNIError(.invalidNetworkConfig, "invalid \(queueKey) \(length): must be 0...\(UInt32.max)")
            }
            transmitQueueLength = UInt32(length)
        }
        mac = try Self.requestedMAC(request, config: config, overrides: overrides)
    }

    /// `dataDir` alone, for DEL and GC, which must work whatever else the config holds.
    static func dataDirectory(_ config: JSONObject) throws(CNIError) -> String {
        guard let value = config["dataDir"], value != .null else { return defaultDataDirectory }
        guard let text = value.stringValue else {
            throw CNIError(.invalidNetworkConfig, "dataDir: expected a string")
        }
        guard !text.isEmpty else { return defaultDataDirectory }
        guard text.hasPrefix("/") else {
            throw CNIError(.invalidNetworkConfig, "dataDir \"\(text)\" must be an absolute path")
        }
        return text
    }

    private static func requestedMAC(
        _ request: CNIRequest, config: JSONObject, overrides: JSONObject
    ) throws -> MACAddress? {
        var chosen: (text: String, source: String)?
        if let text = try string(config["mac"], "mac"), !text.isEmpty { chosen = (text, "mac") }
        // A malformed CNI_ARGS is the runtime's mistake: code 4 from the parser.
        if let text = try request.environment.args()["MAC"], !text.isEmpty { chosen = (text, "CNI_ARGS MAC") }
        if let text = try string(request.config.runtimeConfig["mac"], "runtimeConfig.mac"), !text.isEmpty {
            chosen = (text, "runtimeConfig.mac")
        }
        if let text = try string(overrides["mac"], "args.cni.mac"), !text.isEmpty { chosen = (text, "args.cni.mac") }
        guard let chosen else { return nil }
        guard let mac = MACAddress(chosen.text), !mac.isMulticast else {
            let code: CNIErrorCode =
                chosen.source == "CNI_ARGS MAC" ? .invalidEnvironmentVariables : .invalidNetworkConfig
            throw CNIError(
                code, "\(chosen.source): invalid MAC address \"\(chosen.text)\"",
                details: "expected a unicast Ethernet address such as c2:b0:57:49:47:f1")
        }
        return mac
    }

    /// 0 or absent leaves the MTU alone, as in the reference; the kernel checks the device's own
    /// limits, this only refuses what no device accepts.
    private static func mtu(_ value: JSONValue?, _ key: String) throws(CNIError) -> UInt32? {
        guard let mtu = try integer(value, key), mtu != 0 else { return nil }
        guard (68...65536).contains(mtu) else {
            throw CNIError(.invalidNetworkConfig, "invalid \(key) \(mtu): must be 68...65536 (or 0 to leave it)")
        }
        return UInt32(mtu)
    }

    private static func object(_ value: JSONValue?, _ key: String) throws(CNIError) -> JSONObject? {
        guard let value, value != .null else { return nil }
        guard let object = value.objectValue else {
            throw CNIError(.invalidNetworkConfig, "\(key): expected an object")
        }
        return object
    }

    private static func string(_ value: JSONValue?, _ key: String) throws(CNIError) -> String? {
        guard let value, value != .null else { return nil }
        guard let text = value.stringValue else { throw CNIError(.invalidNetworkConfig, "\(key): expected a string") }
        return text
    }

    private static func bool(_ value: JSONValue?, _ key: String) throws(CNIError) -> Bool? {
        guard let value, value != .null else { return nil }
        guard let flag = value.boolValue else { throw CNIError(.invalidNetworkConfig, "\(key): expected a boolean") }
        return flag
    }

    private static func integer(_ value: JSONValue?, _ key: String) throws(CNIError) -> Int? {
        guard let value, value != .null else { return nil }
        guard let number = value.intValue else { throw CNIError(.invalidNetworkConfig, "\(key): expected an integer") }
        return number
    }
}
