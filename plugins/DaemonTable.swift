import NameService
import PierState

/// The daemons the multi-call executable runs when exec'd under their name. Not plugins (no
/// CNI protocol, never linked into a CNI directory): a plugin execs its own executable
/// (`PluginExec.ownExecutable`) under one of these names to start a long-lived helper. This is
/// the only list of daemon names.
public enum DaemonTable {
    /// The name server of user-defined networks, started on demand by the `names` plugin.
    public static let nameServer = "pier-dns"

    public static let names: [String] = [nameServer]

    /// Runs the daemon called `name` (never returns), or returns for any other name.
    public static func runIfDaemon(named name: String, arguments: [String]) {
        switch name {
        case nameServer:
            NameServerDaemon.main(
                arguments: arguments, defaultDirectory: DefaultPaths.nameServiceDirectory,
                sharedRecords: { SharedNames.otherHosts(storeJSON: $0, network: $1) })
        default:
            return
        }
    }
}
