import CNI
import NetNS
import Netlink
import PluginSupport

/// Builds `pier network inspect` reports from the config directory, the result cache, the
/// lease directory and the kernel.
public struct NetworkInspector {
    public let host: NetworkNamespace
    public let paths: StatePaths
    public var containers: (any ContainerSource)?

    public init(host: NetworkNamespace, paths: StatePaths, containers: (any ContainerSource)? = nil) {
        self.host = host
        self.paths = paths
        self.containers = containers
    }

    public func inspect(network name: String) throws(DiagnosticsError) -> NetworkReport {
        let file = ConfigDirectoryReader(directory: paths.configDirectory).entry(network: name)
        let cached = ResultCacheReader(cacheDirectory: paths.cacheDirectory).all()
        let mine = cached.filter { $0.attachment.network == name }
        guard let summary = file?.summary ?? mine.first?.configList else {
            throw DiagnosticsError("no network named \(name) in \(paths.configDirectory) or the result cache")
        }
        let outside = try snapshot(of: host)
        let firewall = firewallSnapshot(of: host)
        let index = AttachmentIndex(cached: cached, containers: containers?.containers() ?? [], host: outside)
        let tag = Attachment.networkTag(name)
        var report = NetworkReport(
            name: name, configFile: file?.path, cniVersion: summary.cniVersion, plugins: summary.plugins,
            config: summary.raw,
            subnets: summary.subnets, gateways: summary.gateways, bridge: nil, vxlan: [],
            leases: leases(summary, index: index), attachments: [],
            masquerade: MasqueradeReport(configured: summary.ipMasq, subnets: []),
            isolation: IsolationReport(configured: summary.isolation, isolatedBridge: false, sameBridge: false),
            elements: firewall.elements(taggedWith: tag, prefixMatch: true))
        report.masquerade.subnets = firewall.elements(taggedWith: tag, prefixMatch: true)
            .filter { $0.set.hasSuffix(" masq_v4") || $0.set.hasSuffix(" masq_v6") }.flatMap(\.key)
        if let bridgeName = summary.bridge {
            report.bridge = bridge(bridgeName, in: outside)
            report.vxlan = vxlanDevices(of: bridgeName, in: outside)
            let names = firewall.keys(of: "isolated_bridges").compactMap(\.first)
            report.isolation.isolatedBridge = names.contains(.interfaceName(bridgeName))
            report.isolation.sameBridge = firewall.keys(of: "same_bridge").contains {
                $0 == [.interfaceName(bridgeName), .interfaceName(bridgeName)]
            }
        }
        report.attachments = attachments(of: name, cached: mine, index: index, host: outside)
        return report
    }

    func bridge(_ name: String, in outside: NamespaceSnapshot) -> BridgeReport {
        guard let link = outside.link(named: name) else {
            return BridgeReport(name: name, exists: false, addresses: [], ports: [], neighbors: [])
        }
        return BridgeReport(
            name: name, exists: true, mac: link.mac.map { "\($0)" }, mtu: link.mtu, state: Describe.state(link),
            addresses: Describe.addresses(of: link.index, in: outside),
            ports: outside.ports(of: link.index).map(\.name).sorted(),
            neighbors: outside.neighbors.filter { $0.index == link.index }.map { Describe.neighbor($0, in: outside) })
    }

    func vxlanDevices(of bridge: String, in outside: NamespaceSnapshot) -> [VxlanReport] {
        guard let master = outside.link(named: bridge) else { return [] }
        return outside.ports(of: master.index).filter { $0.kind == .vxlan }.map { link in
            VxlanReport(
                name: link.name, vni: link.vxlan?.vni, local: link.vxlan?.local.map { "\($0)" }, port: link.vxlan?.port,
                learning: link.vxlan?.learning, proxy: link.vxlan?.proxy, state: Describe.state(link),
                fdb: outside.fdb.filter { $0.index == link.index }.map {
                    FDBReport(
                        mac: "\($0.mac)", destination: $0.destination.map { "\($0)" },
                        state: Describe.neighborState($0.state))
                },
                neighbors: outside.neighbors.filter { $0.index == link.index }.map {
                    Describe.neighbor($0, in: outside)
                })
        }
    }

    func leases(_ summary: NetworkConfigList.Summary, index: AttachmentIndex) -> [LeaseReport] {
        LeaseReader(dataDirectory: summary.dataDirectory ?? paths.leaseDirectory).leases(network: summary.name).map {
            LeaseReport(
                address: $0.address, containerId: $0.containerID, ifName: $0.ifName,
                live: index.isLive(network: summary.name, containerID: $0.containerID, ifName: $0.ifName))
        }
    }

    /// Attachments known from the cache, plus host veths carrying this network's alias.
    func attachments(
        of network: String, cached: [CachedResult], index: AttachmentIndex, host outside: NamespaceSnapshot
    ) -> [NetworkAttachmentReport] {
        var seen = Set<Attachment>()
        var reports: [NetworkAttachmentReport] = []
        let veths = outside.attachedLinks.filter { $0.attachment.network == network }
        for entry in cached {
            seen.insert(entry.attachment)
            var report = NetworkAttachmentReport(
                containerId: entry.attachment.containerID, ifName: entry.attachment.ifName,
                netns: entry.netns.isEmpty ? nil : entry.netns,
                hostVeth: veths.first { $0.attachment == entry.attachment }?.link.name, addresses: entry.addresses,
                live: index.live.contains(entry.attachment))
            report.interfaceMissing = report.live && report.hostVeth == nil && entry.usesHostVeth
            reports.append(report)
        }
        for (link, attachment) in veths where !seen.contains(attachment) {
            reports.append(
                NetworkAttachmentReport(
                    containerId: attachment.containerID, ifName: attachment.ifName,
                    netns: index.netnsPaths[attachment], hostVeth: link.name, addresses: [],
                    live: index.live.contains(attachment)))
        }
        return reports
    }
}
