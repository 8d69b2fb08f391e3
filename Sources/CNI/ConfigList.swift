/// A network configuration list (`*.conflist`), as a runtime loads it.
public struct NetworkConfigList: Sendable {
    /// The version the runtime will speak: the newest of `cniVersion` and `cniVersions` that this
    /// library implements, or `cniVersion` as written when none qualifies (plugins will then refuse it).
    public var cniVersion: String
    public var cniVersions: [String]
    public var name: String
    public var disableCheck: Bool
    public var disableGC: Bool
    public var loadOnlyInlinedPlugins: Bool
    public var plugins: [PluginConfig]
    /// The list as written, for the result cache.
    public var bytes: [UInt8]

    /// One plugin object of the list. Everything but `type` and `capabilities` belongs to the plugin and
    /// is passed through untouched.
    public struct PluginConfig: Sendable, Equatable {
        public var type: String
        /// Only capabilities set to `true` count.
        public var capabilities: Set<String>
        public var raw: JSONObject

        public init(raw: JSONObject, index: Int) throws(CNIError) {
            let reader = JSONReader(
                raw, path: "plugins[\(index)]", code: .invalidNetworkConfig, context: "invalid network config list")
            let type = try reader.string("type") ?? ""
            guard !type.isEmpty else { throw reader.failure("type", "missing") }
            guard !type.contains("/") else { throw reader.failure("type", "\"\(type)\" must not contain '/'") }
            var capabilities = Set<String>()
            for (key, value) in try reader.reader("capabilities")?.object ?? JSONObject() {
                guard let enabled = value.boolValue else {
                    throw reader.mismatch("capabilities.\(key)", expected: "boolean", got: value)
                }
                if enabled { capabilities.insert(key) }
            }
            self.type = type
            self.capabilities = capabilities
            self.raw = raw
        }
    }

    public init(bytes: [UInt8]) throws(CNIError) {
        let value: JSONValue
        do { value = try JSONValue(parsing: bytes) } catch {
            throw CNIError(.decodingFailure, "error parsing configuration list: \(error)")
        }
        let reader = try JSONReader(value, code: .invalidNetworkConfig, context: "invalid network config list")
        self.bytes = bytes
        self.name = try reader.string("name") ?? ""
        guard !name.isEmpty else { throw CNIError(.invalidNetworkConfig, "error parsing configuration list: no name") }
        try CNIValidation.validateNetworkName(name)
        let declared = try reader.string("cniVersion") ?? ""
        self.cniVersions = try reader.strings("cniVersions") ?? []
        let candidates = (declared.isEmpty ? [] : [declared]) + cniVersions
        self.cniVersion = CNIVersion.newestUsable(candidates) ?? (declared.isEmpty ? CNIVersion.implied : declared)
        self.disableCheck = try NetworkConfigList.lenientBool(reader, "disableCheck")
        self.disableGC = try NetworkConfigList.lenientBool(reader, "disableGC")
        self.loadOnlyInlinedPlugins = try reader.bool("loadOnlyInlinedPlugins") ?? false
        let pluginReaders = try reader.readers("plugins")
        if pluginReaders == nil && loadOnlyInlinedPlugins {
            throw CNIError(
                .invalidNetworkConfig,
                "error parsing configuration list: \"loadOnlyInlinedPlugins\" is true but there is no \"plugins\" key")
        }
        var plugins: [PluginConfig] = []
        for (index, item) in (pluginReaders ?? []).enumerated() {
            plugins.append(try PluginConfig(raw: item.object, index: index))
        }
        self.plugins = plugins
    }

    /// Wraps a legacy single-plugin `.conf`: the list takes its name and version from the plugin.
    public init(singlePluginBytes bytes: [UInt8]) throws(CNIError) {
        let plugin: JSONValue
        do { plugin = try JSONValue(parsing: bytes) } catch {
            throw CNIError(.decodingFailure, "error parsing network config: \(error)")
        }
        let reader = try JSONReader(plugin, code: .invalidNetworkConfig, context: "invalid network config")
        var list = JSONObject()
        if let version = try reader.string("cniVersion") { list["cniVersion"] = .string(version) }
        list["name"] = .string(try reader.string("name") ?? "")
        list["plugins"] = .array([plugin])
        try self.init(bytes: JSONValue.object(list).encodedBytes)
    }

    /// `disableCheck` was a string in the 0.4.0 spec and a boolean later; libcni takes both.
    static func lenientBool(_ reader: JSONReader, _ key: String) throws(CNIError) -> Bool {
        guard let value = reader.value(key) else { return false }
        if let flag = value.boolValue { return flag }
        if let text = value.stringValue {
            switch text.lowercased() {
            case "true": return true
            case "false": return false
            default: throw reader.failure(key, "invalid value \"\(text)\"")
            }
        }
        throw reader.mismatch(key, expected: "boolean", got: value)
    }

    /// The stdin libcni gives plugin `index` for `command`: its object with `name` and `cniVersion`
    /// injected, `prevResult` converted to the list's version (ADD/DEL/CHECK), `runtimeConfig` holding
    /// only the capability values the plugin asked for (omitted when none), and for GC the valid
    /// attachments under both the current and the legacy key.
    public func request(
        forPluginAt index: Int, command: CNICommand, prevResult: CNIResult? = nil,
        capabilityArgs: JSONObject = [:], validAttachments: [Attachment] = []
    ) throws(CNIError) -> [UInt8] {
        guard plugins.indices.contains(index) else {
            throw CNIError(.internalError, "no plugin at index \(index) in network \"\(name)\"")
        }
        let plugin = plugins[index]
        var object = plugin.raw
        object["name"] = .string(name)
        object["cniVersion"] = .string(cniVersion)
        switch command {
        case .add, .delete, .check:
            if let prevResult {
                object["prevResult"] = try prevResult.json(version: cniVersion)
            }
            var runtimeConfig = JSONObject()
            for (key, value) in capabilityArgs where plugin.capabilities.contains(key) {
                runtimeConfig[key] = value
            }
            object["runtimeConfig"] = runtimeConfig.isEmpty ? nil : .object(runtimeConfig)
        case .garbageCollect:
            object["prevResult"] = nil
            object["runtimeConfig"] = nil
            let attachments = JSONValue.array(
                validAttachments.map {
                    .object(JSONObject([("containerID", .string($0.containerID)), ("ifname", .string($0.ifName))]))
                })
            object["cni.dev/valid-attachments"] = attachments
            object["cni.dev/attachments"] = attachments
        case .status, .version:
            break
        }
        return JSONValue.object(object).encodedBytes
    }
}
