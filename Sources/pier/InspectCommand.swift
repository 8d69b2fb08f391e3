import ArgumentParser
import CNI
import Diagnostics
import NetNS
import PierState
import PluginSupport
import Runtime

/// The runtime's paths plus the ones only diagnostics read, and the output format.
struct DiagnosticsOptions: ParsableArguments {
    @OptionGroup var globals: GlobalOptions
    @Option(name: .customLong("lease-dir"), help: "IPAM lease root for networks whose config names no dataDir.")
    var leaseDir = DefaultPaths.leaseDirectory
    @Option(name: .customLong("store-dir"), help: "The cluster store's file store.")
    var storeDir = DefaultPaths.clusterStoreDirectory
    @Flag(help: "Print JSON instead of tables.")
    var json = false

    var paths: StatePaths {
        let environment = globals.environment
        return StatePaths(
            cacheDirectory: environment.cacheDirectory, configDirectory: environment.configDirectory,
            stateRoot: environment.root, leaseDirectory: leaseDir, storeDirectory: storeDir)
    }

    var containers: RuntimeContainers {
        RuntimeContainers(store: StateStore(root: globals.environment.root), manager: globals.manager)
    }

    var netnsDirectory: String { globals.environment.netnsDirectory }

    /// The namespace the CLI runs in is the host it examines.
    func hostNamespace() throws -> NetworkNamespace {
        do { return try NetworkNamespace.current() } catch { throw failure("\(error)") }
    }

    func emit(_ text: String) { printLine(text) }
}

/// The runtime's container records, as diagnostics take them.
struct RuntimeContainers: ContainerSource {
    let store: StateStore

    let manager: ContainerManager

    func containers() -> [ContainerInfo] { store.all().map(info) }

    func find(_ reference: String) -> ContainerInfo? { (try? store.find(reference)).map(info) }

    private func info(_ record: ContainerRecord) -> ContainerInfo {
        ContainerInfo(record, status: manager.statusText(of: record))
    }
}

extension ContainerInfo {
    init(_ record: ContainerRecord, status: String) {
        self.init(
            id: record.id, name: record.name, netnsPath: record.netnsPath,
            attachments: record.attachments.map {
                Attachment(network: $0.network, containerID: record.id, ifName: $0.ifName)
            }, status: status)
    }
}

/// A failure to report as `pier: <message>` (no pointer to --help: the usage was right).
func failure(_ message: String) -> PierFailure { PierFailure(message: message) }

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a container's interfaces, host peers, bridges, published ports and origin.")
    @OptionGroup var options: DiagnosticsOptions
    @Option(name: .customLong("netns"), help: "Inspect the network namespace at this path instead of a container.")
    var netns: String?
    @Argument(help: "Container name or ID.")
    var container: String?

    func validate() throws {
        guard (netns == nil) != (container == nil) else {
            throw ValidationError("give either CONTAINER or --netns PATH")
        }
    }

    func run() throws {
        let info = container.flatMap { options.containers.find($0) }
        if let container, info == nil, netns == nil {
            throw failure("no such container: \(container)")
        }
        guard let path = netns ?? info?.netnsPath else {
            throw failure("\(container ?? "") shares the host's network namespace: nothing of its own to inspect")
        }
        let inspector = Inspector(host: try options.hostNamespace(), paths: options.paths)
        let report: ContainerReport
        do { report = try inspector.inspect(netnsPath: path, container: info) } catch {
            throw failure(error.description)
        }
        options.emit(options.json ? ReportJSON.encode(report) : report.render(style: .forStandardOutput))
    }
}
