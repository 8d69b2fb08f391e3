import ArgumentParser
import Diagnostics

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check that this host can run Pier, find stale state, and say how to fix what is wrong.",
        discussion: "Exits 1 when any check reports an error.")
    @OptionGroup var options: DiagnosticsOptions
    @Flag(help: "Skip the kernel feature probes (they create links in a throwaway namespace).")
    var skipKernelProbes = false

    func run() throws {
        let doctor = Doctor(
            host: try options.hostNamespace(), paths: options.paths, containers: options.containers,
            probeKernel: !skipKernelProbes)
        let report: DoctorReport
        do { report = try doctor.run() } catch { throw failure(error.description) }
        options.emit(options.json ? ReportJSON.encode(report) : report.render(style: .forStandardOutput))
        if report.worst == .error { throw ExitCode(1) }
    }
}
