import ArgumentParser
import ClusterStore
import Glibc
import Overlay

/// `pier agent --network NAME`: keeps this host's overlay FDB and neighbour entries in line
/// with the cluster store until SIGTERM.
struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent", abstract: "Reconcile an overlay network's FDB and neighbour entries on this host.")

    @Option(help: "The overlay network (its CNI network name).")
    var network: String

    @Option(help: "Cluster store type: file or etcd.")
    var storeType: String = "file"

    @Option(help: "File store directory.")
    var storePath: String = ClusterStoreConfig.defaultPath

    @Option(help: "etcd endpoints, comma-separated (http://host:port).")
    var storeEndpoints: String = ClusterStoreConfig.defaultEndpoints.joined(separator: ",")

    @Option(help: "etcd key prefix.")
    var storePrefix: String = ""

    @Option(help: "This host's name in store records (default: the host name).")
    var host: String?

    @Option(help: "Full resync interval in seconds, besides every store change.")
    var resync: Int = 30

    @Option(help: "Runtime state directory (the plugin's runDir), for the lock shared with the plugin.")
    var runDir: String = HostLock.defaultRunDirectory

    func run() throws {
        guard let kind = ClusterStoreConfig.Kind(rawValue: storeType) else {
            throw ValidationError("--store-type must be file or etcd")
        }
        let config = ClusterStoreConfig(
            type: kind, path: storePath,
            endpoints: storeEndpoints.split(separator: ",").map(String.init), prefix: storePrefix, host: host)
        var agent = OverlayAgent(network: network, store: try config.open(), localHost: host) { line in
            let bytes = Array("pier agent: \(line)\n".utf8)
            _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
        agent.resyncSeconds = max(1, resync)
        agent.runDirectory = runDir
        try agent.run()
    }
}
