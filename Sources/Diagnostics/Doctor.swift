import NetNS

/// `pier doctor`: can this host run Pier, and is Pier's state consistent? Every input is a
/// parameter: the namespace to examine (the caller's own for the CLI, a test host in tests),
/// the state paths and the runtime's containers.
public struct Doctor {
    public let host: NetworkNamespace
    public let paths: StatePaths
    /// The runtime's containers; nil when unknown (then only netns liveness decides staleness).
    public var containers: (any ContainerSource)?
    /// Kernel feature probes create links in a throwaway namespace; tests of other checks
    /// may skip them.
    public var probeKernel: Bool

    public init(
        host: NetworkNamespace, paths: StatePaths, containers: (any ContainerSource)? = nil, probeKernel: Bool = true
    ) {
        self.host = host
        self.paths = paths
        self.containers = containers
        self.probeKernel = probeKernel
    }

    public func run() throws(DiagnosticsError) -> DoctorReport {
        var findings = probeKernel ? KernelProbe.run() : []
        let snapshot = try snapshot(of: host, includeFDB: false)
        let firewall = firewallSnapshot(of: host)
        let conflicting = HostChecks.conflictingChains(firewall)
        let configs = ConfigDirectoryReader(directory: paths.configDirectory).entries().map(\.summary)
        let cached = ResultCacheReader(cacheDirectory: paths.cacheDirectory).all()
        let networks = configs + cached.compactMap(\.configList)
        let bridges = Set(networks.compactMap(\.bridge)).filter { snapshot.link(named: $0) != nil }.sorted()

        let ipv6 = networks.contains { $0.subnets.contains { $0.contains(":") } }
        findings += HostChecks.forwarding(in: host, ipv6: ipv6, inUse: !bridges.isEmpty)
        findings.append(HostChecks.bridgeNetfilter(in: host, dropChains: conflicting))
        findings += HostChecks.firewall(firewall, bridges: bridges)
        let index = AttachmentIndex(cached: cached, containers: containers?.containers() ?? [], host: snapshot)
        var leaseDirectories = [paths.leaseDirectory]
        for directory in networks.compactMap(\.dataDirectory) where !leaseDirectories.contains(directory) {
            leaseDirectories.append(directory)
        }
        findings += StaleState(
            index: index, host: snapshot, firewall: firewall, leaseDirectories: leaseDirectories, networks: networks,
            containersKnown: containers != nil
        ).run()
        findings += HostChecks.stores(default: paths.storeDirectory, networks: networks)
        return DoctorReport(findings: findings)
    }
}
