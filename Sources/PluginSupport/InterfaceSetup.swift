import CNI
import IPAddressing
import NetNS
import Netlink

/// Applies a result's addresses and routes to one container interface, the job of the
/// reference `ipam.ConfigureIface`, over a netlink session that lives in the container netns.
public struct InterfaceSetup {
    public let namespace: NetworkNamespace
    public let netlink: RouteNetlink
    /// Where the namespace's sysctls are read and written.
    public let kernel: PluginKernel

    public init(namespace: NetworkNamespace, netlink: RouteNetlink, kernel: PluginKernel) {
        self.namespace = namespace
        self.netlink = netlink
        self.kernel = kernel
    }

    /// Settings a container interface needs before its addresses appear: announce them with a
    /// gratuitous ARP/NA as soon as the link comes up (`arp_notify`, `ndisc_notify`), and skip
    /// duplicate address detection unless asked (IPAM made the address unique; DAD costs ~2 s).
    /// IPv4's goes over netlink and IPv6's are read from the link first: a /proc/sys path
    /// lookup compares against the same names in every other network namespace of the host.
    ///
    /// `silenceUnusedIPv6`: an interface this attachment created that gets IPv4 but no IPv6
    /// address gets no link-local one either (`addr_gen_mode none`, as Docker leaves IPv4-only
    /// networks), so its DAD, router solicitations and MLD reports are not flooded to every
    /// port of the bridge each time a container starts. Only where nothing else could serve
    /// IPv6 on the link (a bridge whose gateway is ours), and never for a host's own device,
    /// whose setting would outlive the attachment.
    public func prepare(
        ifName: String, families: Set<IPFamily>, enableDAD: Bool, silenceUnusedIPv6: Bool = false
    ) throws {
        let link = try netlink.link(named: ifName)
        if link.ipv4Setting(.arpNotify) != 1 { try netlink.setIPv4DeviceConfig(index: link.index, [.arpNotify: 1]) }
        guard families.contains(.v6) else {
            if silenceUnusedIPv6, families.contains(.v4), link.ipv6DeviceConfig != nil,
                link.ipv6AddressGeneration != IPv6AddressGeneration.none
            {
                // Best effort: an interface that keeps its link-local address still works.
                do {
                    try netlink.setIPv6AddressGeneration(index: link.index, .none)
                } catch {
                    cniLog("\(ifName) keeps its IPv6 link-local address: \(error)")
                }
            }
            return
        }
        // A container netns may start with IPv6 disabled; addresses would be refused.
        let loopbackDisabled = try netlink.link(named: "lo").ipv6Setting(.disableIPv6).map { $0 != 0 } ?? true
        let linkDisabled = link.ipv6Setting(.disableIPv6).map { $0 != 0 } ?? true
        try kernel.sysctls(namespace) { sysctl in
            if loopbackDisabled { try sysctl.ensure("net/ipv6/conf/lo/disable_ipv6", "0") }
            if linkDisabled { try sysctl.ensure("net/ipv6/conf/\(ifName)/disable_ipv6", "0") }
            try sysctl.write("net/ipv6/conf/\(ifName)/keep_addr_on_down", "1")
            try sysctl.write("net/ipv6/conf/\(ifName)/ndisc_notify", "1")
            try sysctl.write("net/ipv6/conf/\(ifName)/accept_dad", enableDAD ? "1" : "0")
            if enableDAD { try sysctl.write("net/ipv6/conf/\(ifName)/enhanced_dad", "1") }
        }
    }

    /// Adds every address of `result` that belongs to `interfaceIndex` (its position in
    /// `result.interfaces`), brings the link up, then adds the routes (gateway defaulting to
    /// the same family's address gateway, as the spec says).
    public func apply(_ result: CNIResult, interfaceIndex: Int, link: Link, enableDAD: Bool) throws {
        let addresses = result.ips.filter { $0.interface == interfaceIndex }
        for ip in addresses {
            try ignoringExisting {
                try netlink.addAddress(ip.address, index: link.index, options: AddressOptions(noDAD: !enableDAD))
            }
        }
        try netlink.setLinkUp(index: link.index)
        for route in result.routes {
            let gateway = route.gw ?? addresses.first(where: { $0.family == route.dst.family })?.gateway
            var kernelRoute = Netlink.Route(
                destination: route.dst.network, gateway: gateway, outputIndex: link.index,
                table: route.table.map { UInt32($0) } ?? Netlink.Route.mainTable,
                metric: route.priority.map { UInt32($0) }, mtu: route.mtu.map { UInt32($0) })
            if let scope = route.scope, let kernelScope = RouteScope(rawValue: UInt8(clamping: scope)) {
                kernelRoute.scope = kernelScope
            }
            var exists = false
            try ignoringExisting {
                exists = true
                try netlink.addRoute(kernelRoute)
                exists = false
            }
            // A repeated ADD finds its own route; one through another interface (a second network's default
            // route) is not ours, and the result must not claim it.
            if exists,
                !(try netlink.routes(family: route.dst.family, table: kernelRoute.table)).contains(where: {
                    $0.destination == kernelRoute.destination && $0.outputIndex == link.index
                })
            {
                throw CNIError(
                    .internalError, "route \(route.dst) already exists through another interface",
                    details: "only one network of a container may install it (isDefaultGateway, ipam routes)")
            }
        }
    }

    /// True when `result`'s addresses for `interfaceIndex` are all on the link (CHECK).
    public func missingAddresses(_ result: CNIResult, interfaceIndex: Int, link: Link) throws -> [IPPrefix] {
        let present = Set(try netlink.addresses(index: link.index).map(\.prefix))
        return result.ips.filter { $0.interface == interfaceIndex }.map(\.address).filter { !present.contains($0) }
    }

    /// Routes of `result` with no matching kernel route through this link (CHECK).
    public func missingRoutes(_ result: CNIResult, link: Link) throws -> [CNIResult.Route] {
        var missing: [CNIResult.Route] = []
        for route in result.routes {
            let table = route.table.map { UInt32($0) } ?? Netlink.Route.mainTable
            let kernelRoutes = try netlink.routes(family: route.dst.family, table: table)
            let found = kernelRoutes.contains { kernel in
                kernel.destination.network == route.dst.network
                    && (route.gw == nil || kernel.gateway == route.gw)
            }
            if !found { missing.append(route) }
        }
        return missing
    }
}

/// Host-wide forwarding, written only when it is not already on (as the reference does); asked
/// over netlink first, since a /proc/sys lookup slows down with every network namespace.
public func enableForwarding(for families: Set<IPFamily>, netlink: RouteNetlink, kernel: PluginKernel) throws {
    if families.contains(.v4), try netlink.forwarding(.v4) != true {
        try kernel.sysctls(nil) { try $0.ensure("net/ipv4/ip_forward", "1") }
    }
    if families.contains(.v6), try netlink.forwarding(.v6) != true {
        try kernel.sysctls(nil) { try $0.ensure("net/ipv6/conf/all/forwarding", "1") }
    }
}

/// Parses the MAC a runtime asked for, in the reference's order of precedence: `CNI_ARGS MAC=`,
/// then `args.cni.mac`, then the `mac` capability (`runtimeConfig.mac`), each overriding the last.
public func requestedMAC(_ request: CNIRequest) throws -> MACAddress? {
    var text: String?
    if let fromArgs = try request.environment.args()["MAC"] { text = fromArgs }
    if case .object(let args)? = request.config.args, case .object(let cni)? = args["cni"],
        case .string(let mac)? = cni["mac"]
    {
        text = mac
    }
    if let fromCapability = try request.config.runtimeConfig("mac", as: String.self) { text = fromCapability }
    guard let text else { return nil }
    guard let mac = MACAddress(text), !mac.isMulticast else {
        throw CNIError(.invalidNetworkConfig, "invalid MAC address \"\(text)\"")
    }
    return mac
}

extension InterfaceSetup {
    /// CHECK for one container interface, the part every interface plugin shares: `expected`
    /// (the cached result) lists it in this netns, its MAC matches, and the result's addresses
    /// and routes are on it.
    public func verify(_ link: Link, against expected: CNIResult, ifName: String, netns: String) throws {
        guard let position = expected.interfaces.firstIndex(where: { $0.name == ifName && $0.sandbox == netns }) else {
            throw CNIError(.internalError, "prevResult has no interface \(ifName) in \(netns)")
        }
        if let mac = expected.interfaces[position].mac, MACAddress(mac) != link.mac {
            throw CNIError(.internalError, "\(ifName) MAC \(link.mac?.description ?? "none") != \(mac)")
        }
        let missing = try missingAddresses(expected, interfaceIndex: position, link: link)
        guard missing.isEmpty else {
            throw CNIError(.internalError, "addresses missing on \(ifName): \(missing.map(\.description))")
        }
        let missingRoutes = try missingRoutes(expected, link: link)
        guard missingRoutes.isEmpty else {
            throw CNIError(.internalError, "routes missing in container: \(missingRoutes.map(\.dst.description))")
        }
    }
}
