import CNI
import IPAddressing
import NetNS
import Netlink

/// The L3 side of a container interface on a bridge, one definition for `bridge` and
/// `vxlan-overlay`: the reference bridge's gateway defaults on the result, the container
/// interface's settings, addresses and routes, and with `isGateway` the gateway addresses on
/// the network's side and host forwarding.
public struct BridgedL3 {
    public var isGateway: Bool
    public var isDefaultGateway: Bool
    public var enableDAD: Bool
    public var forceAddress: Bool

    public init(isGateway: Bool, isDefaultGateway: Bool, enableDAD: Bool = false, forceAddress: Bool = false) {
        self.isGateway = isGateway
        self.isDefaultGateway = isDefaultGateway
        self.enableDAD = enableDAD
        self.forceAddress = forceAddress
    }

    /// Completes `result` (IPAM's addresses, at `interfaceIndex`) and applies it to `link`, the
    /// container interface. `gatewayLink` is asked only with `isGateway`: the bridge, or
    /// whatever holds the gateway for it (a VLAN gateway interface).
    ///
    /// With the gateway ours, an IPv4-only network has no IPv6 router on the link: the
    /// container interface gets no IPv6 link-local address (`InterfaceSetup.prepare`'s
    /// `silenceUnusedIPv6`), so it floods no DAD, router solicitations or MLD reports to every
    /// port of the bridge (and, on an overlay, to every host). Without `isGateway` IPv6 stays
    /// on for whoever serves the link.
    public func configure(
        _ result: inout CNIResult, interfaceIndex: Int, link: Link, setup: InterfaceSetup, host: RouteNetlink,
        gatewayLink: () throws -> Link
    ) throws {
        result.applyGatewayDefaults(isGateway: isGateway, isDefaultGateway: isDefaultGateway)
        let families = Set(result.ips.map(\.family))
        try setup.prepare(ifName: link.name, families: families, enableDAD: enableDAD, silenceUnusedIPv6: isGateway)
        try setup.apply(result, interfaceIndex: interfaceIndex, link: link, enableDAD: enableDAD)
        guard isGateway else { return }
        try BridgeDevice.assignGateways(result.ips, to: try gatewayLink(), forceAddress: forceAddress, netlink: host)
        try enableForwarding(for: families, netlink: host, kernel: setup.kernel)
    }
}
