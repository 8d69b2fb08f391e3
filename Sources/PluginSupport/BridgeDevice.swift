import CNI
import IPAddressing
import NetNS
import Netlink

/// What a plugin wants of the Linux bridge its containers hang off.
public struct BridgeSpec: Sendable {
    public var name: String
    public var mtu: UInt32?
    public var promiscuous: Bool
    public var vlanFiltering: Bool

    public init(name: String, mtu: UInt32? = nil, promiscuous: Bool = false, vlanFiltering: Bool = false) {
        self.name = name
        self.mtu = mtu
        self.promiscuous = promiscuous
        self.vlanFiltering = vlanFiltering
    }
}

/// The bridge itself (shared by `bridge` and `vxlan-overlay`): created on first use (or
/// reused), and its gateway addresses.
public enum BridgeDevice {
    /// Finds or creates the bridge and brings it up. A concurrent ADD may create it first:
    /// EEXIST just means "use it". `kernel` writes the host's sysctls.
    public static func ensure(_ spec: BridgeSpec, netlink: RouteNetlink, kernel: PluginKernel) throws -> Link {
        var link: Link
        if let existing = try netlink.linkIfPresent(named: spec.name) {
            link = existing
        } else {
            try ignoringExisting { try netlink.createBridge(name: spec.name, mtu: spec.mtu) }
            link = try netlink.link(named: spec.name)
            if spec.vlanFiltering { try netlink.setBridgeVLANFiltering(index: link.index, true) }
        }
        guard link.kind == .bridge else {
            throw CNIError(
                .invalidNetworkConfig,
                "\(spec.name) already exists but is not a bridge (it is a \(link.kind?.rawValue ?? "device"))")
        }
        if spec.promiscuous && !link.isPromiscuous { try netlink.setPromiscuous(index: link.index, true) }
        // The bridge is a router's interface, not a host taking router advertisements. Read
        // from the link message: a /proc/sys lookup slows down with every network namespace.
        if link.ipv6Setting(.acceptRA).map({ $0 != 0 }) ?? true {
            try? kernel.sysctls(nil) { try $0.ensure("net/ipv6/conf/\(spec.name)/accept_ra", "0") }
        }
        if !link.isUp { try netlink.setLinkUp(index: link.index) }
        return try netlink.link(index: link.index)
    }

    /// Puts each gateway on the bridge with its subnet's prefix length. An IPv4 bridge holds
    /// one address (besides host addresses inside the subnet: service VIPs): a different one is
    /// an error unless `forceAddress` replaces it. IPv6 addresses of other subnets may coexist.
    ///
    /// The usual case, the gateway already there, is one exclusive add answered EEXIST: no dump
    /// of the host's addresses, which grows with every interface on the host.
    public static func assignGateways(
        _ ips: [CNIResult.IPConfig], to bridge: Link, forceAddress: Bool, netlink: RouteNetlink
    ) throws {
        var added = false
        for ip in ips {
            guard let gateway = ip.gateway, let wanted = IPPrefix(address: gateway, length: ip.address.length)
            else { continue }
            let options = AddressOptions(noDAD: true)
            guard try addIfAbsent(wanted, to: bridge, options: options, netlink: netlink) else { continue }
            added = true
            // Newly added: now make sure it does not sit beside a conflicting address.
            let conflicting = try netlink.addresses(index: bridge.index, family: gateway.family)
                .filter { !$0.prefix.address.isLinkLocal && $0.prefix != wanted }
                .filter { gateway.family == .v4 || $0.prefix.overlaps(wanted) }
                // A host address inside the subnet is a service VIP or mesh source (`Services`),
                // which may be put on the bridge before the network's first ADD finishes.
                .filter { !($0.prefix.isHost && wanted.overlaps($0.prefix)) }
            guard !conflicting.isEmpty else { continue }
            try ignoringMissing { try netlink.deleteAddress(wanted, index: bridge.index) }
            guard forceAddress else {
                throw CNIError(
                    .internalError,
                    "\"\(bridge.name)\" already has an IP address different from \(wanted): \(conflicting[0].prefix)"
                        + " (set forceAddress to replace it)")
            }
            for address in conflicting { try netlink.deleteAddress(address.prefix, index: bridge.index) }
            try ignoringExisting { try netlink.addAddress(wanted, index: bridge.index, options: options) }
        }
        // Setting the MAC to itself pins it: a bridge otherwise takes the lowest port MAC and
        // changes it as ports come and go, which breaks neighbours' caches and conntrack. Only
        // when a gateway was just added (the network's first ADD): every MAC change, even to
        // the same value, flushes the bridge's ARP entries and the namespace's route cache.
        if added, let mac = try netlink.link(index: bridge.index).mac { try netlink.setMAC(index: bridge.index, mac) }
    }

    /// Adds `prefix` to `link`; false when it was already there.
    private static func addIfAbsent(
        _ prefix: IPPrefix, to link: Link, options: AddressOptions, netlink: RouteNetlink
    ) throws -> Bool {
        do {
            try netlink.addAddress(prefix, index: link.index, options: options)
            return true
        } catch  where error.isExists {
            return false
        }
    }
}
