import CNI
import ClusterStore
import Netlink
import Overlay

/// What every verb needs from the store side: the open store, this host's name and registry,
/// and the one place store errors become CNI codes.
struct OverlayContext {
    let store: any ClusterStore
    let hostName: String
    let registry: Registry
    let networkRecord: NetworkRecord
    let network: String
    let runDirectory: String

    init(_ request: CNIRequest, _ config: OverlayConfig) throws {
        network = request.config.name
        runDirectory = config.runDir
        do {
            store = try config.store.open()
            hostName = try config.store.resolvedHost()
        } catch {
            throw Self.cniError(error)
        }
        registry = Registry(network: network, store: store, host: hostName)
        networkRecord = NetworkRecord(vni: config.vniValue, port: UInt16(clamping: config.port))
    }

    var lock: HostLock {
        get throws { try HostLock(network: network, runDirectory: runDirectory) }
    }

    func sync(_ netlink: RouteNetlink) -> HostSync {
        HostSync(network: network, store: store, netlink: netlink, localHost: hostName)
    }

    /// Runs store work; its errors leave as CNI errors with the store's own text.
    @discardableResult
    func storeCall<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ClusterStoreError {
            throw Self.cniError(error)
        } catch let error as OverlayConflict {
            throw CNIError(.invalidNetworkConfig, error.description)
        }
    }

    /// Unreachable store: 11, "try again later" (etcd coming back makes the next ADD work).
    static func cniError(_ error: ClusterStoreError) -> CNIError {
        switch error.kind {
        case .unavailable: return CNIError(.tryAgainLater, "cluster store unavailable", details: error.description)
        case .invalidArgument: return CNIError(.invalidNetworkConfig, error.description)
        case .io: return CNIError(.ioFailure, error.description)
        case .corrupt: return CNIError(.internalError, error.description)
        }
    }
}
