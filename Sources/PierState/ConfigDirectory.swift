import CNI
import Glibc

/// A network config directory, searched the way libcni's `LoadConfList` searches it: every
/// `*.conflist` in byte order first, then the legacy single-plugin `*.conf` and `*.json` files
/// (sorted together), each wrapped into a list as `ConfListFromConf` does. The first file that
/// parses and carries a name wins that name; a file that does not parse is skipped (and listed
/// with its problem), so one broken file cannot hide every network.
///
/// The runtime (`pier run`, `network ls`, GC) and diagnostics (`network inspect`, `doctor`) both
/// search through this type, so they always describe the same file.
public struct ConfigDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// One config file and what it parsed to, or why it did not.
    public struct Entry: Sendable {
        public var path: String
        public var list: NetworkConfigList?
        public var problem: String?

        public init(path: String, list: NetworkConfigList?, problem: String?) {
            self.path = path
            self.list = list
            self.problem = problem
        }
    }

    public static let listExtension = ".conflist"
    public static let singlePluginExtensions = [".conf", ".json"]

    /// Every config file in search order, valid or not.
    public func entries() -> [Entry] {
        let names = ((try? FileSystem.list(path)) ?? []).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let lists = names.filter { $0.hasSuffix(Self.listExtension) }
        let singles = names.filter { name in Self.singlePluginExtensions.contains { name.hasSuffix($0) } }
        return lists.map { load(path + "/" + $0, single: false) } + singles.map { load(path + "/" + $0, single: true) }
    }

    /// The file each network name resolves to: the first valid one with that name, in search order.
    public func networks() -> [Entry] {
        var seen = Set<String>()
        return entries().filter { entry in
            guard let name = entry.list?.name else { return false }
            return seen.insert(name).inserted
        }
    }

    /// The distinct network names, in search order.
    public func networkNames() -> [String] { networks().compactMap { $0.list?.name } }

    /// The file `network` resolves to, nil when no valid file names it.
    public func entry(network: String) -> Entry? {
        entries().first { $0.list?.name == network }
    }

    private func load(_ file: String, single: Bool) -> Entry {
        do throws(FileSystemError) {
            guard let bytes = try FileSystem.read(file) else { throw FileSystemError("open", file, errno: ENOENT) }
            return Self.parse(bytes, path: file, single: single)
        } catch {
            return Entry(path: file, list: nil, problem: error.description)
        }
    }

    static func parse(_ bytes: [UInt8], path: String, single: Bool) -> Entry {
        do throws(CNIError) {
            let list = single ? try NetworkConfigList(singlePluginBytes: bytes) : try NetworkConfigList(bytes: bytes)
            return Entry(path: path, list: list, problem: nil)
        } catch {
            return Entry(path: path, list: nil, problem: "\(error)")
        }
    }
}
