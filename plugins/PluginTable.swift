import CNI
import IPAM

/// Every plugin Pier ships, under each name a runtime may exec it by. The multi-call
/// executable dispatches on its invocation name through this table, `scripts/install` links
/// one name per entry (`pier-cni --list`), and nothing else keeps a list of plugin names.
///
/// `host-local` and `host-device` are the reference plugins' names for what Pier's `ipam` and
/// `host` (device mode) do, so a reference CNI directory can be replaced file for file.
public enum PluginTable {
    /// The executable's own name; invoked under it, it lists or explains the plugin names.
    public static let executableName = "pier-cni"

    public static let names: [String] = [
        "bridge", "ipam", "host-local", "portmap", "macvlan", "host", "host-device", "vxlan-overlay", "loopback",
        "tuning", "firewall", "bandwidth", "names",
    ]

    /// The plugin a runtime means by `name`, or nil for a name Pier does not ship.
    public static func plugin(named name: String) -> (any CNIPlugin)? {
        switch name {
        case "bridge": BridgePlugin()
        case "ipam", "host-local": IPAMPlugin()
        case "portmap": PortmapPlugin()
        case "macvlan": MacvlanPlugin()
        case "host": HostPlugin()
        case "host-device": HostPlugin(deviceOnly: true)
        case "vxlan-overlay": OverlayPlugin()
        case "loopback": LoopbackPlugin()
        case "tuning": TuningPlugin()
        case "firewall": FirewallPlugin()
        case "bandwidth": BandwidthPlugin()
        case "names": NamesPlugin()
        default: nil
        }
    }
}
