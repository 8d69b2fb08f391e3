import ArgumentParser
import Diagnostics
import NetNS

/// Paths and output options shared by the diagnostics commands.
struct DiagnosticsOptions: ParsableArguments {
    @Option(name: .customLong("cache-dir"), help: "CNI cache directory (results in <dir>/results).")
    var cacheDir = "/var/lib/cni"
    @Option(name: .customLong("config-dir"), help: "Network config directory.")
    var configDir = "/etc/cni/net.d"
    @Option(name: .customLong("lease-dir"), help: "IPAM lease root for networks whose config names no dataDir.")
    var leaseDir = "/var/lib/cni/networks"
    @Option(name: .customLong("store-dir"), help: "The cluster store's file store.")
    var storeDir = "/var/lib/pier/store"
    @Option(name: .customLong("netns-dir"), help: "Where container network namespaces are pinned.")
    var netnsDir = "/run/netns"
    @Flag(help: "Print JSON instead of tables.")
    var json = false

    var paths: StatePaths {
        StatePaths(
            cacheDirectory: cacheDir, configDirectory: configDir, leaseDirectory: leaseDir, storeDirectory: storeDir)
    }

    /// The namespace the CLI runs in is the host it examines.
    func hostNamespace() throws -> NetworkNamespace {
        do { return try NetworkNamespace.current() } catch { throw failure("\(error)") }
    }
}

func failure(_ message: String) -> ValidationError { ValidationError(message) }

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a container's interfaces, host peers, bridges, published ports and origin.")
    @OptionGroup var options: DiagnosticsOptions
    @Option(name: .customLong("netns"), help: "Inspect the network namespace at this path instead of a container.")
    var netns: String?
    @Argument(help: "Container name (or a netns name or path).")
    var container: String?

    func validate() throws {
        guard (netns == nil) != (container == nil) else { throw failure("give either CONTAINER or --netns PATH") }
    }

    func run() throws {
        let path = netns ?? NamespaceLocator.path(for: container ?? "", netnsDirectory: options.netnsDir)
        let inspector = Inspector(host: try options.hostNamespace(), paths: options.paths)
        let report: ContainerReport
        do { report = try inspector.inspect(netnsPath: path) } catch { throw failure(error.description) }
        print(options.json ? ReportJSON.encode(report) : report.render(style: .forStandardOutput))
    }
}

/// `pier network inspect NAME` from the kernel's point of view (the runtime's own
/// `network inspect` calls `NetworkInspector` the same way).
struct NetworkReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show a network: devices, leases, attachments, nftables state.")
    @OptionGroup var options: DiagnosticsOptions
    @Argument(help: "Network name.")
    var name: String

    func run() throws {
        let inspector = NetworkInspector(host: try options.hostNamespace(), paths: options.paths)
        let report: NetworkReport
        do { report = try inspector.inspect(network: name) } catch { throw failure(error.description) }
        print(options.json ? ReportJSON.encode(report) : report.render(style: .forStandardOutput))
    }
}
