/// Defaults of plugin config keys that are read outside the plugin too (diagnostics describe
/// a network from its config), so they live in a library both use. The overlay's device names
/// are derived in `Overlay.OverlayDevices`, which the plugin and diagnostics both call.
public enum PluginDefaults {
    /// `bridge`: the bridge device when the config names none (the reference plugin's default).
    public static let bridgeName = "cni0"
    /// `bridge`: Pier's `isolation` key when the config leaves it out.
    public static let bridgeIsolation = true

    /// `vxlan-overlay` has no `isolation` key: it programs `inet pier` only for `ipMasq`, and
    /// then always puts its bridge in the isolated set.
    public static func overlayIsolation(ipMasq: Bool) -> Bool { ipMasq }
}
