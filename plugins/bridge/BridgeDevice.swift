import CNI
import IPAddressing
import NetNS
import Netlink
import PluginSupport

/// The bridge itself: created on first use (or reused), and its gateway addresses.
enum BridgeDevice {
    /// Finds or creates the bridge and brings it up. A concurrent ADD may create it first:
    /// EEXIST just means "use it".
    static func ensure(_ config: BridgeConfig, netlink: RouteNetlink) throws -> Link {
        var link: Link
        if let existing = try netlink.linkIfPresent(named: config.bridge) {
            link = existing
        } else {
            try ignoringExisting { try netlink.createBridge(name: config.bridge, mtu: config.mtu.map { UInt32($0) }) }
            link = try netlink.link(named: config.bridge)
            if config.usesVLANs { try netlink.setBridgeVLANFiltering(index: link.index, true) }
        }
        guard link.kind == .bridge else {
            throw CNIError(
                .invalidNetworkConfig,
                "\(config.bridge) already exists but is not a bridge (it is a \(link.kind?.rawValue ?? "device"))")
        }
        if config.promiscMode && !link.isPromiscuous { try netlink.setPromiscuous(index: link.index, true) }
        // The bridge is a router's interface, not a host taking router advertisements.
        try? Sysctl.ensure("net/ipv6/conf/\(config.bridge)/accept_ra", "0")
        if !link.isUp { try netlink.setLinkUp(index: link.index) }
        return try netlink.link(index: link.index)
    }

    /// Puts each gateway on the bridge with its subnet's prefix length. An IPv4 bridge holds
    /// one address: a different one is an error unless `forceAddress` replaces it. IPv6
    /// addresses of other subnets may coexist.
    static func assignGateways(
        _ ips: [CNIResult.IPConfig], to bridge: Link, config: BridgeConfig, netlink: RouteNetlink
    ) throws {
        for ip in ips {
            guard let gateway = ip.gateway, let wanted = IPPrefix(address: gateway, length: ip.address.length)
            else { continue }
            let existing = try netlink.addresses(index: bridge.index, family: gateway.family)
                .filter { !$0.prefix.address.isLinkLocal }
            if existing.contains(where: { $0.prefix == wanted }) { continue }
            let conflicting = existing.filter { gateway.family == .v4 || $0.prefix.overlaps(wanted) }
            for address in conflicting {
                guard config.forceAddress else {
                    throw CNIError(
                        .internalError,
                        "\"\(config.bridge)\" already has an IP address different from \(wanted): \(address.prefix)"
                            + " (set forceAddress to replace it)")
                }
                try netlink.deleteAddress(address.prefix, index: bridge.index)
            }
            try ignoringExisting {
                try netlink.addAddress(wanted, index: bridge.index, options: AddressOptions(noDAD: true))
            }
        }
        // Setting the MAC to itself pins it: a bridge otherwise takes the lowest port MAC and
        // changes it as ports come and go, which breaks neighbours' caches and conntrack.
        if let mac = try netlink.link(index: bridge.index).mac { try netlink.setMAC(index: bridge.index, mac) }
    }
}
