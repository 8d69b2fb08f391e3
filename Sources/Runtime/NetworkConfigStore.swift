import CNI

/// Finds network configs in a directory exactly as libcni's `LoadNetworkConf` does: `*.conflist` in
/// lexical order, first `name` match wins; otherwise legacy single-plugin `*.conf` / `*.json` files.
public struct NetworkConfigStore: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// One config file and what it parsed to (or why it did not).
    public struct Entry: Sendable {
        public var path: String
        public var list: NetworkConfigList?
        public var problem: String?
    }

    /// Every config file, conflists first (each group lexically sorted), as libcni searches them.
    public func entries() -> [Entry] {
        let names = Files.list(directory)
        let lists = names.filter { $0.hasSuffix(".conflist") }
        let singles = names.filter { $0.hasSuffix(".conf") || $0.hasSuffix(".json") }
        var entries: [Entry] = []
        for name in lists { entries.append(load(directory + "/" + name, single: false)) }
        for name in singles { entries.append(load(directory + "/" + name, single: true)) }
        return entries
    }

    /// The distinct network names, in search order.
    public func networkNames() -> [String] {
        var seen = Set<String>()
        var names: [String] = []
        for entry in entries() {
            guard let name = entry.list?.name, !seen.contains(name) else { continue }
            seen.insert(name)
            names.append(name)
        }
        return names
    }

    public func load(network name: String) throws(RuntimeError) -> NetworkConfigList {
        for entry in entries() {
            if let list = entry.list, list.name == name { return list }
        }
        throw RuntimeError.unknownNetwork(name, known: networkNames(), directory: directory)
    }

    /// A config file named on the command line: a conflist, or a single-plugin config.
    public static func load(file path: String) throws(RuntimeError) -> NetworkConfigList {
        let bytes = try Files.read(path)
        do {
            if path.hasSuffix(".conflist") { return try NetworkConfigList(bytes: bytes) }
            // A file with a `plugins` array is a list whatever its suffix.
            if let value = try? JSONValue(parsing: bytes), value["plugins"] != nil {
                return try NetworkConfigList(bytes: bytes)
            }
            return try NetworkConfigList(singlePluginBytes: bytes)
        } catch {
            throw RuntimeError.failed("\(path): \(error)")
        }
    }

    private func load(_ path: String, single: Bool) -> Entry {
        do {
            let bytes = try Files.read(path)
            let list = single ? try NetworkConfigList(singlePluginBytes: bytes) : try NetworkConfigList(bytes: bytes)
            return Entry(path: path, list: list, problem: nil)
        } catch {
            return Entry(path: path, list: nil, problem: "\(error)")
        }
    }
}
