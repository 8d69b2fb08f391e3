import CNI
import PierState

/// Finds network configs with the runtime's own search (`ConfigDirectory`, libcni's order), so
/// `network inspect` always describes the file `pier run --net` uses.
public struct ConfigDirectoryReader: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public struct Entry: Sendable, Equatable {
        public var path: String
        public var summary: NetworkConfigList.Summary
    }

    /// The file each network name resolves to, in search order.
    public func entries() -> [Entry] { ConfigDirectory(path: directory).networks().compactMap(Self.entry) }

    public func entry(network: String) -> Entry? {
        ConfigDirectory(path: directory).entry(network: network).flatMap(Self.entry)
    }

    private static func entry(_ file: ConfigDirectory.Entry) -> Entry? {
        file.list.map { Entry(path: file.path, summary: NetworkConfigList.Summary($0)) }
    }
}
