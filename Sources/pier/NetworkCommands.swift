import ArgumentParser
import CNI
import Diagnostics
import Runtime

struct Network: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Network configs in the config directory.", subcommands: [NetworkList.self, NetworkInspect.self])
}

struct NetworkList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List networks (as libcni finds them).")
    @OptionGroup var globals: GlobalOptions

    func run() throws {
        let store = NetworkConfigStore(directory: globals.environment.configDirectory)
        var rows = [["NAME", "VERSION", "PLUGINS", "FILE"]]
        var seen = Set<String>()
        for entry in store.entries() {
            guard let list = entry.list else {
                rows.append(["(invalid)", "", entry.problem ?? "", entry.path])
                continue
            }
            // libcni uses the first file with a name; later ones are shadowed.
            let name = seen.contains(list.name) ? "\(list.name) (shadowed)" : list.name
            seen.insert(list.name)
            rows.append([name, list.cniVersion, list.plugins.map(\.type).joined(separator: ","), entry.path])
        }
        for line in table(rows) { printLine(line) }
    }
}

struct NetworkInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a network: config, devices, leases, attachments, masquerade, isolation, nftables elements.")
    @OptionGroup var options: DiagnosticsOptions
    @Argument var name: String

    func run() throws {
        let inspector = NetworkInspector(
            host: try options.hostNamespace(), paths: options.paths, containers: options.containers)
        let report: NetworkReport
        do { report = try inspector.inspect(network: name) } catch { throw failure("\(error)") }
        options.emit(options.json ? ReportJSON.encode(report) : report.render(style: .forStandardOutput))
    }
}
