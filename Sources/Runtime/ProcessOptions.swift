import CNI

/// How the container command runs, besides its argv: kept beside the record
/// (`<root>/containers/<id>/process.json`) so that `start` and `restart` repeat it.
public struct ProcessOptions: Sendable, Equatable {
    /// `K=V` entries added to the command's environment.
    public var environment: [String]
    public var workdir: String?
    /// Foreground only: stdin stays attached (otherwise /dev/null, as in Docker without -i).
    public var interactive: Bool
    /// Foreground only: the command runs on pier's terminal, which stdin must be.
    public var tty: Bool
    /// `--dns`, `--dns-search`, `--dns-option`: the container's resolvers (sent to the networks as the
    /// `dns` capability, and into resolv.conf when no network runs a name server).
    public var dnsServers: [String]?
    public var dnsSearch: [String]?
    public var dnsOptions: [String]?

    public init(environment: [String] = [], workdir: String? = nil, interactive: Bool = false, tty: Bool = false) {
        self.environment = environment
        self.workdir = workdir
        self.interactive = interactive
        self.tty = tty
    }
}

extension StateStore {
    func processPath(of id: String) -> String { directory(of: id) + "/process.json" }

    /// A detached container's exit code, written by its monitor.
    func exitPath(of id: String) -> String { directory(of: id) + "/exit" }

    func saveProcess(_ options: ProcessOptions, of id: String) throws(RuntimeError) {
        try Files.writeAtomically(options.stateJSON.encodedBytes, to: processPath(of: id), mode: 0o600)
    }

    func loadProcess(of id: String) -> ProcessOptions {
        guard let bytes = try? Files.read(processPath(of: id)), let value = try? JSONValue(parsing: bytes),
            let options = ProcessOptions(stateJSON: value)
        else { return ProcessOptions() }
        return options
    }
}
