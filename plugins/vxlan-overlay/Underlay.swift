import CNI
import IPAddressing
import Netlink

/// The host interface VXLAN packets leave through, and the address remote hosts tunnel to.
struct Underlay {
    var link: Link
    var vtep: IPAddress

    /// Encapsulation overhead: outer IP + UDP + VXLAN headers + inner Ethernet header.
    var overhead: UInt32 { vtep.family == .v4 ? 50 : 70 }

    /// The overlay MTU unless the config sets one: the underlay's minus the encapsulation, so a
    /// full-size inner packet never needs fragmenting.
    func overlayMTU(configured: Int?) -> UInt32 {
        if let configured { return UInt32(configured) }
        return (link.mtu ?? 1500) - overhead
    }

    /// `spec`: an interface name, a local address, or nil for the default route's interface.
    static func resolve(_ spec: String?, netlink: RouteNetlink) throws -> Underlay {
        if let spec, let address = IPAddress(spec) {
            guard
                let owner = try netlink.addresses(family: address.family).first(where: { $0.prefix.address == address })
            else { throw CNIError(.invalidNetworkConfig, "underlay address \(address) is not on any interface") }
            return Underlay(link: try netlink.link(index: owner.index), vtep: address)
        }
        let link: Link
        if let spec {
            guard let named = try netlink.linkIfPresent(named: spec) else {
                throw CNIError(.invalidNetworkConfig, "underlay interface \(spec) does not exist")
            }
            link = named
        } else {
            link = try defaultRouteLink(netlink)
        }
        return Underlay(link: link, vtep: try vtepAddress(of: link, netlink: netlink))
    }

    private static func defaultRouteLink(_ netlink: RouteNetlink) throws -> Link {
        for family in [IPFamily.v4, .v6] {
            let routes = try netlink.routes(family: family).filter { $0.isDefault && $0.outputIndex != nil }
            if let index = routes.min(by: { ($0.metric ?? 0) < ($1.metric ?? 0) })?.outputIndex {
                return try netlink.link(index: index)
            }
        }
        throw CNIError(
            .invalidNetworkConfig, "no default route to pick the underlay from; set \"underlay\" to an interface")
    }

    /// The link's first global IPv4 address, else its first global IPv6 address.
    private static func vtepAddress(of link: Link, netlink: RouteNetlink) throws -> IPAddress {
        let addresses = try netlink.addresses(index: link.index).map(\.prefix.address)
            .filter { !$0.isLinkLocal && !$0.isLoopback }
        guard let vtep = addresses.first(where: { $0.family == .v4 }) ?? addresses.first else {
            throw CNIError(.invalidNetworkConfig, "underlay interface \(link.name) has no usable address")
        }
        return vtep
    }
}
