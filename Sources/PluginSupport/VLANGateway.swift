import CNI
import Netlink

/// The gateway of a bridge network with an access `vlan`. On a VLAN-filtering bridge the
/// bridge's own interface sits in the default VLAN, so ports of VLAN `vlan` cannot reach an
/// address on it; the gateway goes on `<bridge>.<vlan>` instead: one end of a veth pair whose
/// other end is a port of the bridge in that VLAN (untagged, PVID), as the reference does.
/// Shared by every attachment of the network; removed with the bridge.
public enum VLANGateway {
    /// `<bridge>.<vlan>`, the interface that holds the gateway addresses.
    public static func interfaceName(bridge: String, vlan: UInt16) -> String { "\(bridge).\(vlan)" }

    /// The bridge-side end: `vgw` + a hash of the gateway name, so it is found again by name.
    public static func portName(bridge: String, vlan: UInt16) -> String {
        "vgw" + hex32(stableHash(interfaceName(bridge: bridge, vlan: vlan)))
    }

    /// The bridge-side end's alias, which tells GC the port is the network's own.
    static func portAlias(bridge: String, vlan: UInt16) -> String {
        "pier-gateway:" + interfaceName(bridge: bridge, vlan: vlan)
    }

    /// True for a port `ensure` made on `bridge` (GC removes those together with the bridge).
    public static func isGatewayPort(_ link: Link, of bridge: Link) -> Bool {
        link.masterIndex == bridge.index && link.alias?.hasPrefix("pier-gateway:\(bridge.name).") == true
    }

    /// Finds or creates the gateway interface of `vlan` on `bridge`, up, and returns it.
    /// Concurrent ADDs may race to create it: EEXIST means "use it", and the VLAN changes are
    /// idempotent.
    public static func ensure(
        bridge: Link, vlan: UInt16, preserveDefaultVLAN: Bool, netlink: RouteNetlink
    ) throws -> Link {
        let name = interfaceName(bridge: bridge.name, vlan: vlan)
        if let existing = try netlink.linkIfPresent(named: name) {
            if !existing.isUp { try netlink.setLinkUp(index: existing.index) }
            return existing
        }
        let portName = portName(bridge: bridge.name, vlan: vlan)
        try ignoringExisting {
            try netlink.createVeth(
                VethPair(name: portName, peerName: name, mtu: bridge.mtu, masterIndex: bridge.index))
        }
        let port = try netlink.link(named: portName)
        try netlink.setAlias(index: port.index, portAlias(bridge: bridge.name, vlan: vlan))
        if !preserveDefaultVLAN {
            try ignoringMissing { try netlink.deleteBridgeVLAN(index: port.index, BridgeVLAN(vid: 1)) }
        }
        try netlink.addBridgeVLAN(index: port.index, BridgeVLAN(vid: vlan, pvid: true, untagged: true))
        try netlink.setLinkUp(index: port.index)
        let gateway = try netlink.link(named: name)
        try netlink.setLinkUp(index: gateway.index)
        return try netlink.link(index: gateway.index)
    }
}
