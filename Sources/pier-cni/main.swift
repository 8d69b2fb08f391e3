import CNI
import Glibc
import Plugins

// One executable for every plugin, like busybox: the name it was exec'd under (a hard link
// per plugin name in the CNI directory) says which plugin runs.
//
// All of it runs in a nonisolated function, not as top-level code: top-level code is
// main-actor code, and Swift checks at run time that a closure it passes on runs on the main
// actor's executor, which linked the concurrency runtime and libdispatch into every plugin and
// started both in every exec (docs/design.md, "Peak RSS").
runPierCNI(arguments: CommandLine.arguments)

func runPierCNI(arguments: [String]) -> Never {
    let invokedAs = arguments.first.map { $0.split(separator: "/").last.map(String.init) ?? $0 } ?? ""

    if let plugin = PluginTable.plugin(named: invokedAs) {
        plugin.main()
    }
    // `pier` asks this before running the plugins in its own process: same digest, same plugin code.
    if invokedAs == PluginTable.executableName, arguments.dropFirst() == ["--source-digest"] {
        print(PluginBuild.sourceDigest)
        exit(0)
    }
    // Daemons a plugin starts by exec'ing this file under their name (`DaemonTable`).
    DaemonTable.runIfDaemon(named: invokedAs, arguments: arguments)
    if invokedAs == PluginTable.executableName, arguments.dropFirst() == ["--list"] {
        for name in PluginTable.names { print(name) }
        exit(0)
    }
    let problem =
        invokedAs == PluginTable.executableName
        ? (arguments.count > 1 ? "unknown arguments: \(arguments.dropFirst().joined(separator: " "))\n" : "")
        : "no plugin is named \"\(invokedAs)\"\n"
    let usage = """
        \(problem)\(PluginTable.executableName): Pier's CNI plugins in one executable. Install it once and link it under
        each plugin name (scripts/install does); a runtime then execs it by that name.
        Plugins: \(PluginTable.names.joined(separator: ", "))
        Daemons (started by plugins): \(DaemonTable.names.joined(separator: ", "))
        `\(PluginTable.executableName) --list` prints one name per line.

        """
    _ = usage.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
    exit(problem.isEmpty ? 0 : 2)
}
