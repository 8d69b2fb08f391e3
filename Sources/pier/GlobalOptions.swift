import ArgumentParser
import Runtime

/// Where state, cache, configs, namespaces and plugins are. Accepted before the subcommand (stripped in
/// `Pier.main`) and after it (this option group); values after the subcommand win.
struct GlobalOptions: ParsableArguments {
    @Option(help: "State directory (container records, logs, lock).")
    var root: String?

    @Option(name: .customLong("cache-dir"), help: "CNI cache directory (results in <dir>/results).")
    var cacheDir: String?

    @Option(
        name: .customLong("config-dir"),
        help: "Network config directory (default: conf/ of a source checkout, else /etc/cni/net.d).")
    var configDir: String?

    @Option(name: .customLong("netns-dir"), help: "Where container network namespaces are pinned.")
    var netnsDir: String?

    @Option(
        name: .customLong("cni-path"),
        help: "Plugin directories, ':'-separated (default: $CNI_PATH, else pier's directory then /opt/cni/bin).")
    var cniPath: String?

    nonisolated(unsafe) static var leading: [String: String] = [:]

    static let names = ["--root", "--cache-dir", "--config-dir", "--netns-dir", "--cni-path"]

    /// Splits `--root X` / `--root=X` pairs off the front of the command line.
    static func extractLeading(_ arguments: [String]) -> ([String: String], [String]) {
        var values: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if let equals = argument.firstIndex(of: "="), names.contains(String(argument[..<equals])) {
                values[String(argument[..<equals])] = String(argument[argument.index(after: equals)...])
                index += 1
            } else if names.contains(argument), index + 1 < arguments.count {
                values[argument] = arguments[index + 1]
                index += 2
            } else {
                break
            }
        }
        return (values, Array(arguments[index...]))
    }

    var environment: RuntimeEnvironment {
        let leading = GlobalOptions.leading
        let path = cniPath ?? leading["--cni-path"]
        return RuntimeEnvironment(
            root: root ?? leading["--root"], cacheDirectory: cacheDir ?? leading["--cache-dir"],
            configDirectory: configDir ?? leading["--config-dir"],
            pluginPath: path.map { $0.split(separator: ":").map(String.init) },
            netnsDirectory: netnsDir ?? leading["--netns-dir"])
    }

    var manager: ContainerManager { ContainerManager(environment: environment) }
}
