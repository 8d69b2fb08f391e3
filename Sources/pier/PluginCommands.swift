import ArgumentParser
import CNI
import Glibc
import Runtime

/// Manual plugin execution for testing, like `cnitool`: the whole list runs as libcni runs it (result
/// cache included), and the raw Result or Error JSON is printed.
struct PluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin", abstract: "Run a network's plugins by hand, like cnitool.",
        subcommands: [
            PluginVerb<AddVerb>.self, PluginVerb<DelVerb>.self, PluginVerb<CheckVerb>.self, PluginVerb<GCVerb>.self,
            PluginVerb<StatusVerb>.self, PluginVerb<VersionVerb>.self,
        ])
}

protocol Verb {
    static var name: String { get }
    static var abstract: String { get }
}
enum AddVerb: Verb {
    static let name = "add"
    static let abstract = "ADD the list to a namespace; prints the Result."
}
enum DelVerb: Verb {
    static let name = "del"
    static let abstract = "DEL the list (reverse order, cached result as prevResult)."
}
enum CheckVerb: Verb {
    static let name = "check"
    static let abstract = "CHECK against the cached result."
}
enum GCVerb: Verb {
    static let name = "gc"
    static let abstract = "GC: DEL cached attachments not in --valid, then send GC with --valid."
}
enum StatusVerb: Verb {
    static let name = "status"
    static let abstract = "STATUS of every plugin."
}
enum VersionVerb: Verb {
    static let name = "version"
    static let abstract = "VERSION of every plugin."
}

struct PluginVerb<V: Verb>: ParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: V.name, abstract: V.abstract)
    }

    @OptionGroup var globals: GlobalOptions

    @Option(name: .customLong("net"), help: "Network name in the config directory.")
    var network: String?

    @Option(help: "A .conflist or single-plugin .conf file instead of --net.")
    var config: String?

    @Option(help: "Network namespace path (add, del, check).")
    var netns: String?

    @Option(help: "Interface name in the container.")
    var ifname = "eth0"

    @Option(
        name: .customLong("container-id"),
        help: "Container ID; default as cnitool: \"cnitool-\" + the first 20 hex digits of sha512(netns path).")
    var containerID: String?

    @Option(name: .customLong("args"), help: "CNI_ARGS: K=V;K2=V2.")
    var cniArgs: String?

    @Option(name: .customLong("cap"), help: "Capability arguments as a JSON object (cnitool's CAP_ARGS).")
    var capabilities: String?

    @Option(name: .customLong("valid"), help: "gc: a valid attachment CONTAINERID/IFNAME (repeatable).")
    var valid: [String] = []

    func run() throws {
        let environment = globals.environment
        let executor = NetworkExecutor(
            pluginPath: environment.pluginPath, cache: ResultCache(cacheDirectory: environment.cacheDirectory))
        let list = try reporting { () throws(RuntimeError) in try loadList(environment) }
        do {
            try perform(executor, list)
        } catch {
            if case .plugin(_, _, _, let cniError) = error {
                printLine(cniError.json(cniVersion: list.cniVersion).encodedString)
                let code = cniError.code == .internalError ? " (CNI error \(cniError.code))" : ""
                printError("pier: \(error)\(code)")
            } else {
                printError("pier: \(error)")
            }
            throw ExitCode(1)
        }
    }

    private func loadList(_ environment: RuntimeEnvironment) throws(RuntimeError) -> NetworkConfigList {
        switch (network, config) {
        case (let name?, nil): return try NetworkConfigStore(directory: environment.configDirectory).load(network: name)
        case (nil, let file?): return try NetworkConfigStore.load(file: file)
        default: throw RuntimeError.invalidArgument("give exactly one of --net NAME or --config FILE")
        }
    }

    private func request() throws(RuntimeError) -> AttachmentRequest {
        guard let netns, !netns.isEmpty else { throw RuntimeError.invalidArgument("--netns PATH is required") }
        var capabilityArgs = JSONObject()
        if let capabilities {
            guard let value = try? JSONValue(parsing: capabilities), let object = value.objectValue else {
                throw RuntimeError.invalidArgument("--cap must be a JSON object")
            }
            capabilityArgs = object
        }
        return AttachmentRequest(
            containerID: containerID ?? cnitoolContainerID(netns: netns), netns: netns, ifName: ifname,
            cniArgs: try AttachmentRequest.parseArgs(cniArgs ?? ""), capabilityArgs: capabilityArgs)
    }

    private func perform(_ executor: NetworkExecutor, _ list: NetworkConfigList) throws(RuntimeError) {
        switch V.name {
        case "add":
            try requireRoot()
            let result = try executor.add(list, try request())
            do {
                printLine(try result.json(version: list.cniVersion).encodedString)
            } catch {
                throw RuntimeError.failed("printing the result: \(error)")
            }
        case "del":
            try requireRoot()
            try executor.delete(list, try request())
        case "check":
            try requireRoot()
            try executor.check(list, try request())
        case "gc":
            try requireRoot()
            var attachments: [Attachment] = []
            for item in valid {
                let parts = item.split(separator: "/", maxSplits: 1)
                guard parts.count == 2 else { throw RuntimeError.invalidArgument("--valid wants CONTAINERID/IFNAME") }
                attachments.append(
                    Attachment(network: list.name, containerID: String(parts[0]), ifName: String(parts[1])))
            }
            let errors = executor.garbageCollect(list, valid: attachments)
            if let first = errors.first {
                for error in errors.dropFirst() { printError("pier: \(error)") }
                throw first
            }
        case "status":
            try executor.status(list)
        default:
            for (plugin, info) in try executor.versions(list) {
                var object = JSONObject([("plugin", .string(plugin))])
                for (key, value) in info.json.objectValue ?? [:] { object[key] = value }
                printLine(JSONValue.object(object).encodedString)
            }
        }
    }
}
