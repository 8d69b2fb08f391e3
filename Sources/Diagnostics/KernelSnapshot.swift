import CNI
import IPAddressing
import NetNS
import Netlink
import PluginSupport

/// Everything rtnetlink says about one namespace, read once so every check and renderer works
/// from the same consistent picture.
public struct NamespaceSnapshot: Sendable {
    public var links: [Link]
    public var addresses: [Address]
    public var routes: [Route]
    public var neighbors: [Neighbor]
    public var fdb: [FDBEntry]

    public init(links: [Link], addresses: [Address], routes: [Route], neighbors: [Neighbor], fdb: [FDBEntry]) {
        self.links = links
        self.addresses = addresses
        self.routes = routes
        self.neighbors = neighbors
        self.fdb = fdb
    }

    /// Reads the namespace the socket lives in. FDB entries are skipped unless asked for:
    /// a host with many bridges has many of them, and only overlay views need them.
    public static func read(_ netlink: RouteNetlink, includeFDB: Bool = true) throws(NetlinkError) -> Self {
        var routes: [Route] = []
        var neighbors: [Neighbor] = []
        for family in IPFamily.allCases {
            // All tables: the local table holds the host's own addresses, which trace needs.
            routes += try netlink.routes(family: family, table: nil)
            neighbors += try netlink.neighbors(family: family)
        }
        return Self(
            links: try netlink.links(), addresses: try netlink.addresses(), routes: routes, neighbors: neighbors,
            fdb: includeFDB ? try netlink.fdbEntries() : [])
    }

    public static func read(namespace: NetworkNamespace, includeFDB: Bool = true) throws(NetlinkError) -> Self {
        try read(RouteNetlink(namespace: namespace), includeFDB: includeFDB)
    }

    public func link(index: Int32) -> Link? { links.first { $0.index == index } }
    public func link(named name: String) -> Link? { links.first { $0.name == name } }
    public func addresses(of index: Int32) -> [Address] { addresses.filter { $0.index == index } }
    public func ports(of bridgeIndex: Int32) -> [Link] { links.filter { $0.masterIndex == bridgeIndex } }

    /// Links carrying a Pier attachment alias (host veths), with the attachment.
    public var attachedLinks: [(link: Link, attachment: Attachment)] {
        links.compactMap { link in
            guard let alias = link.alias, let attachment = Attachment.fromLinkAlias(alias) else { return nil }
            return (link, attachment)
        }
    }

    /// Longest-prefix match in the main table (then the local table for host addresses), as
    /// the kernel's FIB lookup does for a unicast destination without policy rules.
    public func routeLookup(_ destination: IPAddress) -> Route? {
        let candidates = routes.filter { $0.family == destination.family && $0.destination.contains(destination) }
        let local = candidates.filter { $0.table == 255 && $0.type == 2 }
        if let hit = local.max(by: { $0.destination.length < $1.destination.length }) { return hit }
        return candidates.filter { $0.table == Route.mainTable && $0.type == 1 }
            .max { lhs, rhs in
                lhs.destination.length != rhs.destination.length
                    ? lhs.destination.length < rhs.destination.length
                    : (lhs.metric ?? 0) > (rhs.metric ?? 0)
            }
    }

    /// True when `address` is one of this namespace's own addresses.
    public func isLocal(_ address: IPAddress) -> Bool {
        addresses.contains { $0.prefix.address == address }
    }
}
