import ArgumentParser
import Glibc
import Runtime

/// The options `create` and `run` share.
struct ContainerOptions: ParsableArguments {
    @Option(help: "Container name (unique); default: a generated one.")
    var name: String?

    @Option(
        name: .customLong("net"),
        help: "Network: a config name, host, none or container:NAME. Repeat for eth1, eth2, … (default: pier).")
    var networks: [String] = []

    @Option(
        name: [.customShort("p"), .customLong("publish")],
        help: """
            Publish a port: [hostIP:]hostPort:containerPort[/tcp|udp|sctp]; containerPort alone takes a free host \
            port; ranges as 8000-8001:80-81.
            """)
    var ports: [String] = []

    @Option(help: "A port the command serves, PORT[/PROTOCOL] or a range: what -P publishes.")
    var expose: [String] = []

    @Flag(
        name: [.customShort("P"), .customLong("publish-all")], help: "Publish every --expose port on a free host port.")
    var publishAll = false

    @Option(help: "Request a fixed address on the first network (its config must declare the `ips` capability).")
    var ip: [String] = []

    @Option(
        name: [.customLong("alias"), .customLong("network-alias")],
        help: "Another name of the container on its first network, for the name service (repeatable).")
    var aliases: [String] = []

    @Option(help: "Request a MAC address on the first network (its config must declare the `mac` capability).")
    var mac: String?

    @Option(
        help:
            "A resolver for the container (repeatable): the upstream of its networks' name server, else its resolv.conf's."
    )
    var dns: [String] = []

    @Option(name: .customLong("dns-search"), help: "A search domain for the container's resolv.conf (repeatable).")
    var dnsSearch: [String] = []

    @Option(name: .customLong("dns-option"), help: "A resolv.conf option, e.g. ndots:2 (repeatable).")
    var dnsOption: [String] = []

    @Option(name: .customLong("args"), help: "CNI_ARGS for every attachment: K=V;K2=V2.")
    var cniArgs: String?

    @Option(help: "Root filesystem directory: a mount namespace and chroot, with generated resolv.conf and hosts.")
    var rootfs: String?

    @Option(name: [.customShort("e"), .customLong("env")], help: "Set an environment variable: K=V, or K to copy it.")
    var env: [String] = []

    @Option(name: .customLong("env-file"), help: "Read environment variables from a file, one K=V a line.")
    var envFile: [String] = []

    @Option(name: [.customShort("w"), .customLong("workdir")], help: "Working directory of the command.")
    var workdir: String?

    @Flag(name: .customLong("rm"), help: "Remove the container when its process exits.")
    var autoRemove = false

    @Flag(name: [.customShort("i"), .customLong("interactive")], help: "Keep stdin attached.")
    var interactive = false

    @Flag(
        name: [.customShort("t"), .customLong("tty")], help: "The command runs on pier's terminal (stdin must be one).")
    var tty = false

    @OptionGroup var serviceMember: ServiceMemberOptions

    @Argument(parsing: .postTerminator, help: "The command and its arguments (pier's options end where it begins).")
    var command: [String] = []

    func options() throws(RuntimeError) -> CreateOptions {
        for port in expose where port.contains(":") {
            throw RuntimeError.invalidArgument("invalid --expose \(port): PORT[/PROTOCOL], the container's side only")
        }
        var options = CreateOptions(command: command)
        options.name = name
        options.networks = networks
        options.ports = try PortSpec.expand(ports + (publishAll ? expose : []))
        // A service member's -p is the service's: published on every host (the routing mesh).
        options.service = try serviceMember.options(ports: options.ports)
        if options.service != nil { options.ports = [] }
        options.ips = ip
        options.mac = mac
        options.aliases = aliases
        options.cniArgs = try AttachmentRequest.parseArgs(cniArgs ?? "")
        options.rootfs = rootfs
        options.autoRemove = autoRemove
        options.process = ProcessOptions(
            environment: try EnvironmentOptions.resolve(env: env, files: envFile), workdir: workdir,
            interactive: interactive, tty: tty)
        try CapabilityArgs.validateDNS(servers: dns, search: dnsSearch, options: dnsOption)
        if !dns.isEmpty { options.process.dnsServers = dns }
        if !dnsSearch.isEmpty { options.process.dnsSearch = dnsSearch }
        if !dnsOption.isEmpty { options.process.dnsOptions = dnsOption }
        return options
    }
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a container: its namespaces and networks.",
        usage: "pier create [OPTIONS] COMMAND [ARG...]")
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var container: ContainerOptions

    func run() throws {
        let record = try reporting { () throws(RuntimeError) in try globals.manager.create(try container.options()) }
        printLine(record.id)
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Start a created container's command.")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.customShort("a"), .customLong("attach")], help: "Stay in the foreground and return its exit code.")
    var attach = false
    @Argument var container: String

    func run() throws {
        let code = try reporting { () throws(RuntimeError) in try globals.manager.start(container, detach: !attach) }
        if let code, code != 0 { throw ExitCode(code) }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Create and start a container.", usage: "pier run [OPTIONS] COMMAND [ARG...]")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.customShort("d"), .customLong("detach")], help: "Run in the background and print the ID.")
    var detach = false
    @OptionGroup var container: ContainerOptions

    func run() throws {
        let (record, code) = try reporting { () throws(RuntimeError) in
            try globals.manager.run(try container.options(), detach: detach)
        }
        if detach { printLine(record.id) }
        if let code, code != 0 { throw ExitCode(code) }
    }
}

struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command inside a running container.",
        usage: "pier exec [OPTIONS] CONTAINER COMMAND [ARG...]")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.customShort("e"), .customLong("env")], help: "Set an environment variable: K=V, or K to copy it.")
    var env: [String] = []
    @Option(name: .customLong("env-file"), help: "Read environment variables from a file, one K=V a line.")
    var envFile: [String] = []
    @Option(name: [.customShort("w"), .customLong("workdir")], help: "Working directory of the command.")
    var workdir: String?
    @Flag(name: [.customShort("i"), .customLong("interactive")], help: "Keep stdin attached.")
    var interactive = false
    @Flag(
        name: [.customShort("t"), .customLong("tty")], help: "The command runs on pier's terminal (stdin must be one).")
    var tty = false
    @Argument(help: "Container name or ID.") var container: String
    @Argument(parsing: .postTerminator, help: "The command and its arguments.") var command: [String] = []

    func run() throws {
        let code = try reporting { () throws(RuntimeError) in
            let process = ProcessOptions(
                environment: try EnvironmentOptions.resolve(env: env, files: envFile), workdir: workdir,
                interactive: interactive, tty: tty)
            return try globals.manager.exec(container, command: command, process: process)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

/// What `stop` and `restart` both take: the grace time and the containers.
struct StopOptions: ParsableArguments {
    @Option(name: [.customShort("t"), .customLong("time")], help: "Seconds to wait before SIGKILL.")
    var time: Double = 10
    @Argument(help: "Container names or IDs.") var containers: [String]
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop containers: SIGTERM, then SIGKILL after the grace time.")
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var stopping: StopOptions

    func run() throws {
        let manager = globals.manager
        try forEachContainer(stopping.containers) { (container) throws(RuntimeError) in
            try manager.stop(container, grace: stopping.time)
        }
    }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Restart containers: stop (SIGTERM, then SIGKILL after the grace time), then start detached.")
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var stopping: StopOptions

    func run() throws {
        let manager = globals.manager
        try forEachContainer(stopping.containers) { (container) throws(RuntimeError) in
            try manager.stop(container, grace: stopping.time)
            _ = try manager.start(container, detach: true)
        }
    }
}

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill", abstract: "Send a signal (default SIGKILL) to running containers.")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.customShort("s"), .customLong("signal")], help: "Signal name (KILL, SIGTERM, HUP, …) or number.")
    var signal = "KILL"
    @Argument(help: "Container names or IDs.") var containers: [String]

    func run() throws {
        guard let number = SignalNames.number(signal) else { throw PierFailure(message: "invalid signal: \(signal)") }
        let manager = globals.manager
        try forEachContainer(containers) { (container) throws(RuntimeError) in
            try manager.sendSignal(container, signal: number)
        }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove containers: DEL every attachment, delete the namespace and the record.")
    @OptionGroup var globals: GlobalOptions
    @Flag(
        name: [.customShort("f"), .customLong("force")],
        help: "Kill a running container first; finish a half-made one; remove one whose namespace others share.")
    var force = false
    @Argument(help: "Container names or IDs.") var containers: [String]

    func run() throws {
        let manager = globals.manager
        try forEachContainer(containers) { (container) throws(RuntimeError) in
            let warnings = try manager.remove(container, force: force, alsoRemoving: containers)
            for warning in warnings { printError("pier: warning: \(warning)") }
        }
    }
}

/// Docker's way with several containers: each one is tried, each success prints its name, each
/// failure is reported, and the exit status says whether any failed.
func forEachContainer(_ containers: [String], _ body: (String) throws(RuntimeError) -> Void) throws {
    var failed = false
    for container in containers {
        do {
            try body(container)
            printLine(container)
        } catch {
            printError("pier: \(error)")
            failed = true
        }
    }
    if failed { throw ExitCode(containers.count == 1 ? 125 : 1) }
}

struct Port: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port", abstract: "List a container's published ports.")
    @OptionGroup var globals: GlobalOptions
    @Argument(help: "Container name or ID.") var container: String
    @Argument(help: "Only this container port: PORT[/PROTOCOL].") var port: String?

    func run() throws {
        let mappings = try reporting { () throws(RuntimeError) in try globals.manager.publishedPorts(container) }
        var lines: [String] = []
        for mapping in mappings {
            let key = "\(mapping.containerPort)/\(mapping.protocol)"
            if let port, port != key, port != String(mapping.containerPort) { continue }
            let host = mapping.hostIP.map { $0.contains(":") ? "[\($0)]" : $0 } ?? "0.0.0.0"
            lines.append(port == nil ? "\(key) -> \(host):\(mapping.hostPort)" : "\(host):\(mapping.hostPort)")
        }
        if let port, lines.isEmpty { throw PierFailure(message: "no public port '\(port)' published for \(container)") }
        for line in lines { printLine(line) }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "CHECK a container's attachments against their cached results.")
    @OptionGroup var globals: GlobalOptions
    @Argument var container: String

    func run() throws {
        try reporting { () throws(RuntimeError) in try globals.manager.check(container) }
    }
}

struct GarbageCollect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Finish half-made or half-removed containers, DEL stale cached attachments, send GC to every network."
    )
    @OptionGroup var globals: GlobalOptions

    func run() throws {
        let report = try reporting { () throws(RuntimeError) in try globals.manager.garbageCollect() }
        for name in report.removedContainers { printLine("removed \(name)") }
        for error in report.errors { printError("pier: gc: \(error)") }
        if !report.errors.isEmpty { throw ExitCode(1) }
    }
}

/// `--rm` for detached containers: waits for the process, then removes the container.
struct Reap: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__reap", shouldDisplay: false)
    @OptionGroup var globals: GlobalOptions
    @Argument var id: String

    func run() throws {
        globals.manager.reap(id)
    }
}
