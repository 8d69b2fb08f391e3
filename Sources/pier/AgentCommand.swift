import ArgumentParser
import ClusterStore
import Glibc
import Overlay
import PierState
import Services

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

    @Option(help: "etcd endpoints, comma-separated (http://host:port or https://host:port).")
    var storeEndpoints: String = ClusterStoreConfig.defaultEndpoints.joined(separator: ",")

    @Option(help: "etcd over TLS: PEM CA certificates the members' certificates must chain to.")
    var storeTrustedCaFile: String?

    @Option(help: "etcd over TLS: PEM client certificate (with --store-key-file).")
    var storeCertFile: String?

    @Option(help: "etcd over TLS: PEM private key of --store-cert-file.")
    var storeKeyFile: String?

    @Option(help: "etcd user, for clusters with authentication enabled (with --store-password-file).")
    var storeUsername: String?

    @Option(help: "File holding the etcd user's password (its first line), kept off the command line.")
    var storePasswordFile: String?

    @Option(help: "etcd key prefix.")
    var storePrefix: String = ""

    @Option(help: "This host's name in store records (default: the host name).")
    var host: String?

    @Option(help: "Full resync interval in seconds, besides every store change.")
    var resync: Int = 30

    @Option(help: "Runtime state directory (the plugin's runDir), for the lock shared with the plugin.")
    var runDir: String = HostLock.defaultRunDirectory

    @Option(help: "The network's name records (the names plugin's dataDir), for service names on this host.")
    var namesDir: String = DefaultPaths.nameServiceDirectory

    @Option(help: "Where the network's conflist is (its IPAM gives this host's routing-mesh address).")
    var configDir: String = DefaultPaths.configDirectory

    @Option(help: "Seconds a host's heartbeat may stand still before its service members leave every choice.")
    var hostTimeout: Double = 10

    func run() throws {
        guard let kind = ClusterStoreConfig.Kind(rawValue: storeType) else {
            throw ValidationError("--store-type must be file or etcd")
        }
        var password: String?
        if let storePasswordFile {
            guard let bytes = try? FileSystem.read(storePasswordFile) else {
                throw ValidationError("--store-password-file \(storePasswordFile) is not readable")
            }
            password = String(
                decoding: bytes.prefix { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        }
        let config = ClusterStoreConfig(
            type: kind, path: storePath,
            endpoints: storeEndpoints.split(separator: ",").map(String.init), prefix: storePrefix, host: host,
            security: EtcdSecurity(
                trustedCAFile: storeTrustedCaFile, certFile: storeCertFile, keyFile: storeKeyFile,
                username: storeUsername, password: password))
        let log: (String) -> Void = { line in
            let bytes = Array("pier agent: \(line)\n".utf8)
            _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
        let store = try config.open()
        var agent = OverlayAgent(network: network, store: store, localHost: host, log: log)
        agent.resyncSeconds = max(1, resync)
        agent.runDirectory = runDir
        // The conflist's names plugin says where the network's names are; --names-dir otherwise.
        var described = ConfigDirectory(path: configDir).entry(network: network)?.list.map(ServiceNetwork.init)
        if var network = described, network.namesDirectory == nil, FileSystem.isDirectory(namesDir) {
            network.namesDirectory = namesDir
            described = network
        }
        let services = ServiceAgent(
            cluster: ServiceCluster(store: store, network: network, host: try config.resolvedHost()),
            network: described, namesDirectory: FileSystem.isDirectory(namesDir) ? namesDir : nil, log: log)
        services.hostTimeout = max(1, hostTimeout)
        agent.onTick = { changed in
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            services.tick(storeChanged: changed, now: Double(now.tv_sec) + Double(now.tv_nsec) / 1e9)
        }
        try agent.run()
    }
}
