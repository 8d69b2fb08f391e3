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
        help: "Publish a port: [hostIP:]hostPort:containerPort[/tcp|udp|sctp].")
    var ports: [String] = []

    @Option(help: "Request a fixed address on the first network (capability `ips`).")
    var ip: [String] = []

    @Option(help: "Request a MAC address on the first network (capability `mac`).")
    var mac: String?

    @Option(name: .customLong("args"), help: "CNI_ARGS for every attachment: K=V;K2=V2.")
    var cniArgs: String?

    @Option(help: "Root filesystem directory: a mount namespace and chroot, with generated resolv.conf and hosts.")
    var rootfs: String?

    @Flag(name: .customLong("rm"), help: "Remove the container when its process exits.")
    var autoRemove = false

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.")
    var command: [String] = []

    func options() throws(RuntimeError) -> CreateOptions {
        var options = CreateOptions(command: command.first == "--" ? Array(command.dropFirst()) : command)
        options.name = name
        options.networks = networks
        options.ports = ports
        options.ips = ip
        options.mac = mac
        options.cniArgs = try AttachmentRequest.parseArgs(cniArgs ?? "")
        options.rootfs = rootfs
        options.autoRemove = autoRemove
        return options
    }
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a container: its namespaces and networks.")
    @OptionGroup var globals: GlobalOptions
    @OptionGroup var container: ContainerOptions

    func run() throws {
        let record = try reporting { () throws(RuntimeError) in try globals.manager.create(try container.options()) }
        printLine(record.id)
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a created container's command.")
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
    static let configuration = CommandConfiguration(abstract: "Create and start a container.")
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
    static let configuration = CommandConfiguration(abstract: "Run a command inside a running container.")
    @OptionGroup var globals: GlobalOptions
    @Argument var container: String
    @Argument(parsing: .captureForPassthrough) var command: [String] = []

    func run() throws {
        let argv = command.first == "--" ? Array(command.dropFirst()) : command
        let code = try reporting { () throws(RuntimeError) in try globals.manager.exec(container, command: argv) }
        if code != 0 { throw ExitCode(code) }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop containers: SIGTERM, then SIGKILL after the grace time.")
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.customShort("t"), .customLong("time")], help: "Seconds to wait before SIGKILL.")
    var time: Double = 10
    @Argument var containers: [String]

    func run() throws {
        let manager = globals.manager
        for container in containers {
            try reporting { () throws(RuntimeError) in try manager.stop(container, grace: time) }
            printLine(container)
        }
    }
}

struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove containers: DEL every attachment, delete the namespace and the record.")
    @OptionGroup var globals: GlobalOptions
    @Flag(
        name: [.customShort("f"), .customLong("force")], help: "Kill a running container first; finish a half-made one."
    )
    var force = false
    @Argument var containers: [String]

    func run() throws {
        let manager = globals.manager
        for container in containers {
            let warnings = try reporting { () throws(RuntimeError) in try manager.remove(container, force: force) }
            for warning in warnings { printError("pier: warning: \(warning)") }
            printLine(container)
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "CHECK a container's attachments against their cached results.")
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
