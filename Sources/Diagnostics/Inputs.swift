import CNI
import PierState
import PluginSupport

/// Where Pier keeps its state on disk. Every path is a plain input so diagnostics never
/// depend on the runtime's internals, and tests point them at their own directories.
public struct StatePaths: Sendable, Equatable {
    /// libcni cache root: results are `<cacheDirectory>/results/<network>-<containerID>-<ifname>`.
    public var cacheDirectory: String
    /// Network configs (`*.conflist`, `*.conf`, `*.json`).
    public var configDirectory: String
    /// The runtime's state root (`--root`).
    public var stateRoot: String
    /// IPAM lease root used when a network's config names no `dataDir`.
    public var leaseDirectory: String
    /// The cluster store's file store.
    public var storeDirectory: String

    public init(
        cacheDirectory: String = DefaultPaths.cacheDirectory, configDirectory: String = DefaultPaths.configDirectory,
        stateRoot: String = DefaultPaths.stateRoot, leaseDirectory: String = DefaultPaths.leaseDirectory,
        storeDirectory: String = DefaultPaths.clusterStoreDirectory
    ) {
        self.cacheDirectory = cacheDirectory
        self.configDirectory = configDirectory
        self.stateRoot = stateRoot
        self.leaseDirectory = leaseDirectory
        self.storeDirectory = storeDirectory
    }
}

/// What diagnostics need to know about one container: the runtime fills it from its own
/// records, so this module never reads the runtime's state format.
public struct ContainerInfo: Sendable, Equatable {
    public var id: String
    public var name: String
    /// nil when the container shares another namespace (host mode).
    public var netnsPath: String?
    public var attachments: [Attachment]
    /// The runtime's status word, shown as is.
    public var status: String?

    public init(id: String, name: String, netnsPath: String?, attachments: [Attachment], status: String? = nil) {
        self.id = id
        self.name = name
        self.netnsPath = netnsPath
        self.attachments = attachments
        self.status = status
    }
}

/// Something that can list containers (the runtime's state store, or a fixed list in tests).
public protocol ContainerSource {
    func containers() -> [ContainerInfo]
}

/// A fixed list of containers.
public struct StaticContainers: ContainerSource, Sendable {
    public let list: [ContainerInfo]
    public init(_ list: [ContainerInfo]) { self.list = list }
    public func containers() -> [ContainerInfo] { list }
}
