import ArgumentParser
import Diagnostics

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Walk the path from a container to an address hop by hop, then probe it with real packets.",
        discussion: """
            FROM and TO are container names or IP addresses; TO may end in :PORT (IPv6: [addr]:PORT) to \
            follow port publishing and probe a TCP connection. Exits 1 when the path is broken.
            """)
    @OptionGroup var options: DiagnosticsOptions
    @Option(name: .customLong("from-netns"), help: "Trace from the network namespace at this path.")
    var fromNetns: String?
    @Option(name: .customLong("to-netns"), help: "The destination's network namespace, when Pier cannot find it.")
    var toNetns: String?
    @Flag(name: .customLong("no-probe"), help: "Only walk the kernel state; send no packets.")
    var noProbe = false
    @Argument(help: "FROM (omit with --from-netns), then TO[:PORT].")
    var endpoints: [String] = []

    func validate() throws {
        let expected = fromNetns == nil ? 2 : 1
        guard endpoints.count == expected else {
            throw ValidationError(
                fromNetns == nil ? "give FROM and TO[:PORT]" : "give TO[:PORT] (FROM is --from-netns)")
        }
    }

    func run() throws {
        let containers = options.containers
        let targets = TraceTargets(
            paths: options.paths, netnsDirectory: options.netnsDirectory,
            resolveContainer: { containers.find($0)?.netnsPath })
        let (to, port) = TraceTargets.split(endpoints[endpoints.count - 1])
        let report: TraceReport
        do {
            let from = try fromNetns ?? targets.sourceNamespace(endpoints[0])
            let (destination, namespace) = try targets.destination(to)
            let request = TraceRequest(
                fromNetns: from, destination: destination, port: port, toNetns: toNetns ?? namespace, probe: !noProbe)
            report = try Tracer(host: try options.hostNamespace(), paths: options.paths).trace(request)
        } catch {
            throw failure("\(error)")
        }
        options.emit(options.json ? ReportJSON.encode(report) : report.render(style: .forStandardOutput))
        if !report.isHealthy { throw ExitCode(1) }
    }
}
