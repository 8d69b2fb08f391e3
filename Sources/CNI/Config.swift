/// The configuration one plugin receives on stdin. Well-known keys are parsed; everything else stays
/// reachable through `raw` or, read as the plugin's own type, `decode(_:)`.
public struct NetworkConfig: Sendable {
    /// As given, or `0.1.0` when absent, as the spec defines.
    public var cniVersion: String
    public var name: String
    /// The plugin binary name; may be empty in a hand-written stdin.
    public var type: String
    /// Nil when there is no `ipam` key or it is `{}`: both mean "no IPAM". Any other `ipam`
    /// object must name its delegate (`type`), or the config is refused (code 7): keys there
    /// mean the author wanted addresses.
    public var ipam: IPAMConfig?
    /// The config's `dns` block (result shape).
    public var dns: CNIResult.DNS?
    /// Capability values from the runtime; null entries are dropped, as kubelet-era runtimes sent
    /// `{"portMappings":null}`.
    public var runtimeConfig: JSONObject
    /// The structured `args` object (conventionally `args.cni.*`).
    public var args: JSONValue?
    /// The previous plugin's result, or on DEL/CHECK the cached result, converted to the 1.1 model.
    public var prevResult: CNIResult?
    /// GC only: the attachments of this network that must be kept, from `cni.dev/valid-attachments`
    /// or the older `cni.dev/attachments`. Nil when neither key is present.
    public var validAttachments: [Attachment]?
    /// The whole document, in its original key order.
    public var raw: JSONObject
    /// The exact stdin, for delegation.
    public var bytes: [UInt8]

    /// Parses stdin: invalid JSON is code 6, an invalid network name or a wrongly typed well-known key
    /// is code 7. `capabilities` (libcni leaves it in although the spec says it must not) is only
    /// checked for its shape, an object of booleans.
    public init(bytes: [UInt8]) throws(CNIError) {
        let value: JSONValue
        do { value = try JSONValue(parsing: bytes) } catch {
            // A repeated key parses, but means one network to Pier and another to Go's tools.
            if let key = error.duplicateKey {
                throw CNIError(.invalidNetworkConfig, "invalid network config: duplicate key \"\(key)\"")
            }
            throw CNIError(.decodingFailure, "error unmarshalling network config: \(error)")
        }
        guard let object = value.objectValue else {
            throw CNIError(.decodingFailure, "error unmarshalling network config: expected a JSON object")
        }
        let reader = JSONReader(object, code: .invalidNetworkConfig, context: "invalid network config")
        self.bytes = bytes
        self.raw = object
        let version = try reader.string("cniVersion") ?? ""
        self.cniVersion = version.isEmpty ? CNIVersion.implied : version
        self.name = try reader.string("name") ?? ""
        try CNIValidation.validateNetworkName(name)
        self.type = try reader.string("type") ?? ""

        if let ipamReader = try reader.reader("ipam"), !ipamReader.object.isEmpty {
            let ipamType = try ipamReader.string("type") ?? ""
            guard !ipamType.isEmpty else { throw ipamReader.failure("type", "missing") }
            self.ipam = IPAMConfig(type: ipamType, raw: ipamReader.object)
        }
        for (key, value) in try reader.reader("capabilities")?.object ?? JSONObject() where value.boolValue == nil {
            throw reader.mismatch("capabilities.\(key)", expected: "boolean", got: value)
        }
        if let dnsReader = try reader.reader("dns") { self.dns = try CNIResult.DNS(dnsReader) }

        var runtimeConfig = JSONObject()
        for (key, entry) in try reader.reader("runtimeConfig")?.object ?? JSONObject() where entry != .null {
            runtimeConfig[key] = entry
        }
        self.runtimeConfig = runtimeConfig
        self.args = reader.value("args")

        if let previous = reader.value("prevResult") {
            // A result always says its version; one without is not a result of any plugin.
            if previous.objectValue != nil, try reader.reader("prevResult")?.string("cniVersion") == nil {
                throw reader.failure("prevResult.cniVersion", "missing")
            }
            do {
                self.prevResult = try CNIResult(json: previous, defaultVersion: cniVersion)
            } catch {
                throw CNIError(error.code, "could not parse prevResult: \(error.msg)", details: error.details)
            }
        }
        if let current = try NetworkConfig.attachments(reader, "cni.dev/valid-attachments", network: name) {
            self.validAttachments = current
        } else {
            self.validAttachments = try NetworkConfig.attachments(reader, "cni.dev/attachments", network: name)
        }
    }

    /// The GC keys list `{containerID, ifname}`; the network is the config's own.
    private static func attachments(
        _ reader: JSONReader, _ key: String, network: String
    ) throws(CNIError) -> [Attachment]? {
        guard let items = try reader.readers(key) else { return nil }
        var attachments: [Attachment] = []
        for item in items {
            attachments.append(
                Attachment(
                    network: network, containerID: try item.string("containerID") ?? "",
                    ifName: try item.string("ifname") ?? ""))
        }
        return attachments
    }

    /// The whole document for a plugin's own keys; failures are code 7 and name the key.
    public var reader: JSONReader {
        JSONReader(raw, code: .invalidNetworkConfig, context: "invalid network config")
    }

    /// Reads the plugin's own view of the config from the parsed stdin.
    public func decode<T: JSONReadable>(_ type: T.Type) throws(CNIError) -> T {
        try T(reader)
    }

    /// Capability values from the runtime (`portMappings`, `ips`, `mac`, ...); failures name the
    /// key as `runtimeConfig.<key>`.
    public var runtimeConfigReader: JSONReader {
        JSONReader(runtimeConfig, path: "runtimeConfig", code: .invalidNetworkConfig, context: "invalid network config")
    }

    /// A string capability value (`mac`, `deviceID`).
    public func runtimeConfig(_ key: String, as type: String.Type) throws(CNIError) -> String? {
        try runtimeConfigReader.string(key)
    }

    /// A capability value that is one object (`bandwidth`).
    public func runtimeConfig<T: JSONReadable>(_ key: String, as type: T.Type) throws(CNIError) -> T? {
        try runtimeConfigReader.read(key, as: T.self)
    }

    /// A capability value that is a list of objects (`portMappings`).
    public func runtimeConfig<T: JSONReadable>(_ key: String, as type: [T].Type) throws(CNIError) -> [T]? {
        try runtimeConfigReader.readAll(key, as: T.self)
    }
}

/// The `ipam` section: its type names the delegate binary; the rest belongs to that delegate.
public struct IPAMConfig: Sendable, Equatable {
    public var type: String
    public var raw: JSONObject

    public init(type: String, raw: JSONObject = [:]) {
        self.type = type
        self.raw = raw
    }

    /// The section for its delegate's keys; failures name the key as `ipam.<key>`.
    public var reader: JSONReader {
        JSONReader(raw, path: "ipam", code: .invalidNetworkConfig, context: "invalid network config")
    }

    /// Reads the delegate's view of the section.
    public func decode<T: JSONReadable>(_ type: T.Type) throws(CNIError) -> T {
        try T(reader)
    }
}
