import ArgumentParser
import CNI
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
        commandName: "inspect", abstract: "Show a network: its config, plugins and cached attachments.")
    @OptionGroup var globals: GlobalOptions
    @Argument var name: String

    func run() throws {
        let environment = globals.environment
        let store = NetworkConfigStore(directory: environment.configDirectory)
        let list = try reporting { () throws(RuntimeError) in try store.load(network: name) }
        let path = store.entries().first { $0.list?.name == name }?.path ?? ""
        let cache = ResultCache(cacheDirectory: environment.cacheDirectory)
        var object = JSONObject()
        object["name"] = .string(list.name)
        object["file"] = .string(path)
        object["cniVersion"] = .string(list.cniVersion)
        object["plugins"] = .array(list.plugins.map { .string($0.type) })
        object["config"] = (try? JSONValue(parsing: list.bytes)) ?? .null
        object["attachments"] = .array(
            cache.all().filter { $0.networkName == list.name }.map { entry in
                .object(
                    JSONObject([
                        ("containerId", .string(entry.request.containerID)), ("ifName", .string(entry.request.ifName)),
                        ("netns", .string(entry.request.netns)), ("result", entry.result ?? .null),
                    ]))
            })
        printLine(JSONValue.object(object).encodedString)
    }
}
