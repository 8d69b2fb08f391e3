/// Runs the IPAM plugin named by `ipam.type` the way the spec's delegation section describes: the same
/// environment with only `CNI_COMMAND` changed, the entire stdin, stderr passed through, and any Error
/// it prints rethrown unchanged so its code reaches the runtime.
public struct IPAMDelegate: Sendable {
    public let type: String
    public let request: CNIRequest

    /// `type` defaults to the config's `ipam.type`; a config without one cannot delegate (code 7).
    public init(_ request: CNIRequest, type: String? = nil) throws(CNIError) {
        guard let type = type ?? request.config.ipam?.type, !type.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "invalid network config: key \"ipam.type\": missing")
        }
        guard !type.contains("/") else {
            throw CNIError(
                .invalidNetworkConfig, "invalid network config: key \"ipam.type\": \"\(type)\" must not contain '/'")
        }
        self.type = type
        self.request = request
    }

    /// The delegate's (abbreviated) result, read from whatever version it answered in.
    public func add() throws(CNIError) -> CNIResult {
        let stdout = try invoke(.add)
        guard !stdout.isEmpty else {
            throw CNIError(.decodingFailure, "IPAM plugin \"\(type)\" returned no result")
        }
        return try CNIResult(bytes: stdout, defaultVersion: request.cniVersion)
    }

    /// Delegate ADD, then `configure` with its result; if `configure` fails, the addresses are
    /// released again (delegate DEL) before its error is rethrown, as the spec requires. A failing
    /// release is logged, not thrown, so the original cause reaches the runtime.
    public func add<T>(undoingOnFailure configure: (CNIResult) throws -> T) throws -> T {
        let result = try add()
        do {
            return try configure(result)
        } catch {
            do { try delete() } catch let releaseError { cniLog("releasing IPAM after a failed ADD: \(releaseError)") }
            throw error
        }
    }

    /// Propagates every error: whether "already released" counts as success is the delegate's call,
    /// and a well-behaved IPAM plugin already succeeds then.
    public func delete() throws(CNIError) { _ = try invoke(.delete) }
    public func check() throws(CNIError) { _ = try invoke(.check) }
    public func garbageCollect() throws(CNIError) { _ = try invoke(.garbageCollect) }
    public func status() throws(CNIError) { _ = try invoke(.status) }

    func invoke(_ command: CNICommand) throws(CNIError) -> [UInt8] {
        let path = try PluginExec.find(type, in: request.environment.path)
        var environment = request.environment.variables
        environment["CNI_COMMAND"] = command.rawValue
        return try PluginExec.run(path: path, environment: environment, stdin: request.stdin)
    }
}

extension CNIRequest {
    /// Shorthands for the common case of delegating to `ipam.type`.
    public func delegateAdd(type: String? = nil) throws(CNIError) -> CNIResult {
        try IPAMDelegate(self, type: type).add()
    }

    public func delegateDelete(type: String? = nil) throws(CNIError) { try IPAMDelegate(self, type: type).delete() }
    public func delegateCheck(type: String? = nil) throws(CNIError) { try IPAMDelegate(self, type: type).check() }
    public func delegateGarbageCollect(type: String? = nil) throws(CNIError) {
        try IPAMDelegate(self, type: type).garbageCollect()
    }
    public func delegateStatus(type: String? = nil) throws(CNIError) { try IPAMDelegate(self, type: type).status() }
}
