/// `pier`'s state root:
///
///     <root>/lock                         the store-wide lock every state change holds
///     <root>/containers/<id>/state.json   one container record
public struct StateLayout: Sendable, Equatable {
    public let root: String

    public init(root: String) { self.root = root }

    public var lockPath: String { root + "/lock" }
    public var containersDirectory: String { root + "/containers" }
    public func containerDirectory(id: String) -> String { containersDirectory + "/" + id }
    public func recordPath(id: String) -> String { containerDirectory(id: id) + "/state.json" }
}
