import CNI
import Firewall
import IPAddressing
import NetNS
import Netlink
import PierTables
import PluginSupport

/// Builds `pier inspect` reports: a container's interfaces, seen from inside its namespace and
/// from the host (veth peer, bridge port, published ports), and where each came from.
public struct Inspector {
    public let host: NetworkNamespace
    public let paths: StatePaths

    public init(host: NetworkNamespace, paths: StatePaths) {
        self.host = host
        self.paths = paths
    }

    public func inspect(netnsPath: String, container: ContainerInfo? = nil) throws(DiagnosticsError)
        -> ContainerReport
    {
        let namespace = try openNamespace(netnsPath)
        let inside = try snapshot(of: namespace, includeFDB: false)
        let outside = try hostPeers(of: inside.links)
        let cache = ResultCacheReader(cacheDirectory: paths.cacheDirectory)
        // A container's entries are keyed by its attachments; only a bare namespace needs the whole cache.
        let cached =
            (container.map { $0.attachments.compactMap(cache.entry(for:)) } ?? cache.all()).filter {
                $0.netns == netnsPath
            }
        // The published ports of a container's cached attachments are looked up by key; anything else
        // needs every DNAT map.
        let keyed = container != nil && !cached.isEmpty
        let firewall = keyed ? nil : firewallSnapshot(of: host)
        let client = keyed ? try? NFTablesClient(namespace: host) : nil
        let configs = ConfigDirectoryReader(directory: paths.configDirectory)
        // Loopback is the same in every namespace and only hides the interesting interfaces
        // (scripts read `interfaces[0]`, as with `docker inspect`).
        let links = inside.links.filter { $0.flags & 0x8 == 0 }  // IFF_LOOPBACK
        var interfaces = links.map { link -> InterfaceReport in
            let peer = hostPeer(of: link, in: outside)
            let attachment = identify(link, peer: peer, container: container, cached: cached)
            var report = InterfaceReport(
                name: link.name, index: link.index, kind: link.kind?.rawValue, mac: link.mac.map { "\($0)" },
                mtu: link.mtu, state: Describe.state(link), adminUp: link.isUp,
                addresses: Describe.addresses(of: link.index, in: inside),
                routes: inside.routes.filter { $0.table == Route.mainTable && $0.outputIndex == link.index }
                    .map { Describe.route($0, in: inside) },
                neighbors: inside.neighbors.filter { $0.index == link.index }.map { Describe.neighbor($0, in: inside) },
                hostPeer: peer.map { peerReport($0, in: outside) }, network: nil, attachment: nil, origin: nil,
                publishedPorts: [])
            if let attachment {
                report.network = attachment.network
                report.attachment = AttachmentReport(
                    network: attachment.network, containerId: attachment.containerID, ifName: attachment.ifName,
                    ownerTag: attachment.ownerTag)
                report.origin = origin(of: attachment, cache: cache, configs: configs)
                if let firewall {
                    report.publishedPorts = firewall.publishedPorts.filter { $0.owner == attachment.ownerTag }
                } else if let client, let entry = cached.first(where: { $0.attachment == attachment }) {
                    report.publishedPorts = publishedPorts(of: entry, owner: attachment.ownerTag, client: client)
                }
            }
            return report
        }
        // Attached interfaces first, in the runtime's attachment order (eth0, eth1, …).
        let order = container?.attachments.map(\.ifName) ?? []
        interfaces.sort { lhs, rhs in
            let left = (lhs.attachment == nil ? 1 : 0, order.firstIndex(of: lhs.name) ?? order.count, lhs.index)
            let right = (rhs.attachment == nil ? 1 : 0, order.firstIndex(of: rhs.name) ?? order.count, rhs.index)
            return left < right
        }
        let identity = container.map { ContainerIdentity(id: $0.id, name: $0.name, status: $0.status) }
        return ContainerReport(container: identity, netns: netnsPath, interfaces: interfaces)
    }

    /// The host's side of `links`: each veth's peer and the bridge it is a port of, fetched by index.
    /// Dumping every host link instead cost time in proportion to the containers on the host.
    func hostPeers(of links: [Link]) throws(DiagnosticsError) -> NamespaceSnapshot {
        let netlink: RouteNetlink
        do { netlink = try RouteNetlink(namespace: host) } catch {
            throw DiagnosticsError.wrap(error, "cannot read the kernel state of \(host.path)")
        }
        var found: [Link] = []
        func fetch(_ index: Int32) -> Link? {
            if let known = found.first(where: { $0.index == index }) { return known }
            // Gone, or never in this namespace: then it is no peer of ours (see `hostPeer`).
            guard let link = try? netlink.link(index: index) else { return nil }
            found.append(link)
            return link
        }
        for link in links where link.kind == .veth && link.linkNetnsID != nil {
            guard let index = link.linkIndex, let peer = fetch(index) else { continue }
            if let bridge = peer.masterIndex { _ = fetch(bridge) }
        }
        return NamespaceSnapshot(links: found, addresses: [], routes: [], neighbors: [], fdb: [])
    }

    /// The DNAT map elements `owner` holds for the port mappings its ADD was given: one kernel lookup
    /// per mapping and map, where dumping the maps cost one element per port published on the host.
    func publishedPorts(of entry: CachedResult, owner: String, client: NFTablesClient) -> [PublishedPortRecord] {
        let maps = [
            PortPublishing.dnatV4Bound, PortPublishing.dnatV4, PortPublishing.dnatV6Bound, PortPublishing.dnatV6,
        ]
        var found: [PublishedPortRecord] = []
        for map in maps {
            let family: IPFamily = map.dataType?.first == .ipv6Address ? .v6 : .v4
            let bound = map.keyType.count == 3
            for mapping in entry.portMappings {
                guard let ipProtocol = mapping.protocol.isEmpty ? IPProtocol.tcp : IPProtocol(name: mapping.protocol),
                    let hostPort = UInt16(exactly: mapping.hostPort)
                else { continue }
                // As portmap keys them: a host address narrows the family, and 0.0.0.0 or :: binds none.
                var key: [SetValue] = [.inetProtocol(ipProtocol.rawValue), .port(hostPort)]
                if let text = mapping.hostIP, !text.isEmpty {
                    guard let address = IPAddress(text), address.family == family else { continue }
                    let unspecified = address.bytes.allSatisfy { $0 == 0 }
                    guard bound != unspecified else { continue }
                    if bound { key.insert(.address(address), at: 0) }
                } else if bound {
                    continue
                }
                guard let record = try? client.element(key, in: map.path), record.comment == owner,
                    let port = PublishedPortRecord(record: record, in: map)
                else { continue }
                found.append(port)
            }
        }
        return found
    }

    /// The host end of a veth: the container end's IFLA_LINK names the peer's index in the
    /// namespace IFLA_LINK_NETNSID points at; the peer must point back, or it is someone else's.
    func hostPeer(of link: Link, in outside: NamespaceSnapshot) -> Link? {
        guard link.kind == .veth, link.linkNetnsID != nil, let peerIndex = link.linkIndex,
            let peer = outside.link(index: peerIndex), peer.kind == .veth, peer.linkIndex == link.index
        else { return nil }
        return peer
    }

    func peerReport(_ peer: Link, in outside: NamespaceSnapshot) -> PeerReport {
        PeerReport(
            name: peer.name, index: peer.index, mac: peer.mac.map { "\($0)" }, state: Describe.state(peer),
            adminUp: peer.isUp, alias: peer.alias, bridge: peer.masterIndex.flatMap { outside.link(index: $0)?.name },
            hairpin: peer.bridgePort?.hairpin, isolated: peer.bridgePort?.isolated)
    }

    /// The attachment an interface belongs to: the host veth's alias says it best; otherwise
    /// the runtime's record or a cache entry for this namespace and interface name.
    func identify(_ link: Link, peer: Link?, container: ContainerInfo?, cached: [CachedResult]) -> Attachment? {
        if let alias = peer?.alias, let attachment = Attachment.fromLinkAlias(alias) { return attachment }
        if let attachment = container?.attachments.first(where: { $0.ifName == link.name }) { return attachment }
        return cached.first { $0.attachment.ifName == link.name }?.attachment
    }

    func origin(of attachment: Attachment, cache: ResultCacheReader, configs: ConfigDirectoryReader) -> OriginReport {
        let entry = cache.entry(for: attachment)
        let file = configs.entry(network: attachment.network)
        let summary = entry?.configList ?? file?.summary
        return OriginReport(
            network: attachment.network, cniVersion: summary?.cniVersion, plugins: summary?.plugins ?? [],
            configFile: file?.path, cacheFile: entry?.path, resultAddresses: entry?.addresses ?? [])
    }
}
