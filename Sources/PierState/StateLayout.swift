/// `pier`'s state root:
///
///     <root>/lock                         the store-wide lock every state change holds
///     <root>/containers/<id>/state.json   one container record
///     <root>/containers/<id>/pid          the container's init, written by `__init`
///     <root>/containers/<id>/log          a detached container's output
///     <root>/names/<name>                 symlink to the id of the container with that name
///     <root>/joined/<id>                  symlink to the network namespace path a container
///                                         joined (`--net container:NAME`) without owning it
///     <root>/listing                      what `ps` shows of every container, one line each
///     <root>/listing.pending              one byte, `1` while a change to the records is not yet in it
///     <root>/listing.stale                the same mark as earlier versions made it (present = `1`)
///     <root>/services/<network>/<S>.json  one service on one network (`Services.ServiceRecord`)
///     <root>/services/lock                held while a service record and its kernel state change
public struct StateLayout: Sendable, Equatable {
    public let root: String

    public init(root: String) { self.root = root }

    public var lockPath: String { root + "/lock" }
    public var containersDirectory: String { root + "/containers" }
    public func containerDirectory(id: String) -> String { containersDirectory + "/" + id }
    public func recordPath(id: String) -> String { containerDirectory(id: id) + "/state.json" }
    public func pidPath(id: String) -> String { containerDirectory(id: id) + "/" + Self.pidName }
    public func logPath(id: String) -> String { containerDirectory(id: id) + "/" + Self.logName }
    /// The indexes over the records, so one container is found without reading them all.
    public var namesDirectory: String { root + "/names" }
    public var joinedDirectory: String { root + "/joined" }
    public var listingPath: String { root + "/listing" }
    public var listingPendingPath: String { root + "/listing.pending" }
    public var listingStalePath: String { root + "/listing.stale" }
    public var servicesDirectory: String { root + "/services" }
    public var servicesLockPath: String { servicesDirectory + "/lock" }
    public func serviceDirectory(network: String) -> String { servicesDirectory + "/" + network }
    public func servicePath(network: String, name: String) -> String {
        serviceDirectory(network: network) + "/" + name + ".json"
    }

    static let pidName = "pid"
    static let logName = "log"

    /// True for what a container directory holds before its record is first written (and what
    /// a `pier` killed at that instant leaves): a directory holding nothing else is abandoned.
    public static func isAuxiliaryFile(_ name: String) -> Bool {
        name == pidName || name == logName || FileSystem.isSiblingTemporary(name)
    }
}
