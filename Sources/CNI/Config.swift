import FoundationEssentials

/// The configuration one plugin receives on stdin. Well-known keys are parsed; everything else stays
/// reachable through `raw` or `decode(_:)`.
public struct NetworkConfig: Sendable {
    /// As given, or `0.1.0` when absent, as the spec defines.
    public var cniVersion: String
    public var name: String
    /// The plugin binary name; may be empty in a hand-written stdin.
    public var type: String
    /// Nil when there is no `ipam` key, or it is `{}` or lacks a type: all mean "no IPAM".
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
    /// The exact stdin, for delegation and for `decode(_:)`.
    public var bytes: [UInt8]

    /// Parses stdin: invalid JSON is code 6, an invalid network name or a wrongly typed well-known key
    /// is code 7. `capabilities` is ignored: libcni leaves it in although the spec says it must not.
    public init(bytes: [UInt8]) throws(CNIError) {
        let value: JSONValue
        do { value = try JSONValue(parsing: bytes) } catch {
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

        if let ipamReader = try reader.reader("ipam"), let ipamType = try ipamReader.string("type"), !ipamType.isEmpty {
            self.ipam = IPAMConfig(type: ipamType, raw: ipamReader.object)
        }
        if let dnsReader = try reader.reader("dns") { self.dns = try CNIResult.DNS(dnsReader) }

        var runtimeConfig = JSONObject()
        for (key, entry) in try reader.reader("runtimeConfig")?.object ?? JSONObject() where entry != .null {
            runtimeConfig[key] = entry
        }
        self.runtimeConfig = runtimeConfig
        self.args = reader.value("args")

        if let previous = reader.value("prevResult") {
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

    /// Decodes the plugin's own view of the config from the exact stdin bytes.
    public func decode<T: Decodable>(_ type: T.Type) throws(CNIError) -> T {
        try ConfigDecoding.decode(type, from: bytes, context: "invalid network config")
    }

    /// A capability value supplied by the runtime (`portMappings`, `ips`, `mac`, ...).
    public func runtimeConfig<T: Decodable>(_ key: String, as type: T.Type) throws(CNIError) -> T? {
        guard let value = runtimeConfig[key] else { return nil }
        return try ConfigDecoding.decode(type, from: value.encodedBytes, context: "invalid runtimeConfig \"\(key)\"")
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

    public func decode<T: Decodable>(_ type: T.Type) throws(CNIError) -> T {
        try ConfigDecoding.decode(type, from: JSONValue.object(raw).encodedBytes, context: "invalid ipam config")
    }
}

/// Turns `JSONDecoder` failures into spec errors that name the key: broken JSON is a decoding failure
/// (6), a well-formed document with a wrong or missing key is an invalid config (7).
enum ConfigDecoding {
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], context: String) throws(CNIError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw describe(error, context: context)
        } catch {
            throw CNIError(.decodingFailure, "\(context): \(error)")
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }

    static func describe(_ error: DecodingError, context: String) -> CNIError {
        switch error {
        case .typeMismatch(let expected, let info):
            return CNIError(
                .invalidNetworkConfig, "\(context): key \"\(path(info.codingPath))\": expected \(expected)",
                details: info.debugDescription)
        case .valueNotFound(let expected, let info):
            return CNIError(
                .invalidNetworkConfig, "\(context): key \"\(path(info.codingPath))\": expected \(expected), got null")
        case .keyNotFound(let key, let info):
            return CNIError(
                .invalidNetworkConfig, "\(context): key \"\(path(info.codingPath + [key]))\": missing")
        case .dataCorrupted(let info) where info.codingPath.isEmpty:
            return CNIError(.decodingFailure, "\(context): \(info.debugDescription)")
        case .dataCorrupted(let info):
            return CNIError(
                .invalidNetworkConfig, "\(context): key \"\(path(info.codingPath))\": \(info.debugDescription)")
        @unknown default:
            return CNIError(.decodingFailure, "\(context): \(error)")
        }
    }
}
