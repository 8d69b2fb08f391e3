/// Where Pier's state lives when nothing overrides it. Every default path is written here once;
/// configs and command-line options override them, tests always do.
public enum DefaultPaths {
    /// libcni's cache root (`CNI_CACHE_DIR`): results are `<cacheDirectory>/results/...`.
    public static let cacheDirectory = "/var/lib/cni"
    /// host-local's default `dataDir`: leases are `<leaseDirectory>/<network>/<ip>`.
    public static let leaseDirectory = "/var/lib/cni/networks"
    /// Network configs (`*.conflist`, `*.conf`, `*.json`), as libcni's `NETCONFPATH` default.
    public static let configDirectory = "/etc/cni/net.d"
    /// `pier`'s state root (`--root`): container records and the store lock.
    public static let stateRoot = "/run/pier"
    /// Where named network namespaces are bind-mounted, so `ip netns` lists them.
    public static let netnsDirectory = "/run/netns"
    /// Where runtimes look for CNI plugins after `CNI_PATH`.
    public static let cniBinDirectory = "/opt/cni/bin"
    /// Runtime state shared by `vxlan-overlay` and `pier agent` (`<overlayRunDirectory>/overlay/`).
    public static let overlayRunDirectory = "/run/pier"
    /// The `names` plugin's records and the `pier-dns` server's control files:
    /// `<nameServiceDirectory>/<network>/<containerID>:<ifName>` (see NameService).
    public static let nameServiceDirectory = "/run/pier/dns"
    /// The embedded file cluster store.
    public static let clusterStoreDirectory = "/var/lib/pier/store"
}
