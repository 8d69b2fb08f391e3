import CNI
import PierState

/// The runtime's network configs: a config directory searched as libcni searches it
/// (`ConfigDirectory`, shared with diagnostics so both always name the same file).
public struct NetworkConfigStore: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// One config file and what it parsed to (or why it did not).
    public typealias Entry = ConfigDirectory.Entry

    /// Every config file, conflists first (each group lexically sorted), as libcni searches them.
    public func entries() -> [Entry] { ConfigDirectory(path: directory).entries() }

    /// The distinct network names, in search order.
    public func networkNames() -> [String] { ConfigDirectory(path: directory).networkNames() }

    public func load(network name: String) throws(RuntimeError) -> NetworkConfigList {
        let configs = ConfigDirectory(path: directory)
        guard let list = configs.entry(network: name)?.list else {
            throw RuntimeError.unknownNetwork(name, known: configs.networkNames(), directory: directory)
        }
        return list
    }

    /// A config file named on the command line: a conflist, or a single-plugin config.
    public static func load(file path: String) throws(RuntimeError) -> NetworkConfigList {
        let bytes = try Files.read(path)
        do {
            if path.hasSuffix(ConfigDirectory.listExtension) { return try NetworkConfigList(bytes: bytes) }
            // A file with a `plugins` array is a list whatever its suffix.
            if let value = try? JSONValue(parsing: bytes), value["plugins"] != nil {
                return try NetworkConfigList(bytes: bytes)
            }
            return try NetworkConfigList(singlePluginBytes: bytes)
        } catch {
            throw RuntimeError.failed("\(path): \(error)")
        }
    }
}
