import CNI

/// Finds network configs the way libcni does: files of the config directory in name order,
/// the first one with a given network name wins.
public struct ConfigDirectoryReader: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public struct Entry: Sendable, Equatable {
        public var path: String
        public var summary: NetworkConfigList.Summary
    }

    public func entries() -> [Entry] {
        var seen = Set<String>()
        var entries: [Entry] = []
        let extensions = [".conflist", ".conf", ".json"]
        for name in FileList.names(in: directory) where extensions.contains(where: { name.hasSuffix($0) }) {
            let path = directory + "/" + name
            guard let bytes = FileList.read(path), let list = Self.parse(bytes, isList: name.hasSuffix(".conflist"))
            else { continue }
            guard !seen.contains(list.name) else { continue }
            seen.insert(list.name)
            entries.append(Entry(path: path, summary: NetworkConfigList.Summary(list)))
        }
        return entries
    }

    public func entry(network: String) -> Entry? { entries().first { $0.summary.name == network } }

    /// A `.conf` holds one plugin object: wrap it into a list, as libcni's ConfListFromConf does.
    static func parse(_ bytes: [UInt8], isList: Bool) -> NetworkConfigList? {
        if let list = try? NetworkConfigList(bytes: bytes), !list.plugins.isEmpty || isList { return list }
        guard !isList, let value = try? JSONValue(parsing: bytes), var object = value.objectValue,
            let name = object["name"]?.stringValue
        else { return nil }
        let version = object["cniVersion"]?.stringValue ?? "0.2.0"
        object["name"] = nil
        var wrapper = JSONObject()
        wrapper["cniVersion"] = .string(version)
        wrapper["name"] = .string(name)
        wrapper["plugins"] = .array([.object(object)])
        return try? NetworkConfigList(bytes: JSONValue.object(wrapper).encodedBytes)
    }
}
