import CNI
import NetNS
import Netlink
import PluginSupport

/// VLAN membership of the host veth (`vlan`, `vlanTrunk`, `preserveDefaultVlan`).
enum VLANSupport {
    /// Fails with code 7 before anything changes when the kernel cannot filter VLANs on a
    /// bridge (no CONFIG_BRIDGE_VLAN_FILTERING): the probe runs in a private, throwaway netns.
    static func requireKernelSupport(_ kernel: PluginKernel) throws {
        let scratch = try kernel.scratchNamespace()
        let netlink = try kernel.netlink(scratch)
        try netlink.createBridge(name: "vlanprobe")
        let probe = try netlink.link(named: "vlanprobe")
        do {
            try netlink.setBridgeVLANFiltering(index: probe.index, true)
        } catch {
            throw CNIError(
                .invalidNetworkConfig,
                "vlan/vlanTrunk need bridge VLAN filtering, which this kernel lacks"
                    + " (CONFIG_BRIDGE_VLAN_FILTERING): \(error)")
        }
    }

    /// The host veth's VLAN entries: the default VLAN 1 removed unless preserved, the access
    /// VLAN as PVID and untagged, trunk VLANs tagged; a trunk with no access VLAN keeps native
    /// VLAN 1 untagged, as the reference does.
    static func apply(_ config: BridgeConfig, port: Link, netlink: RouteNetlink) throws {
        if !config.preserveDefaultVlan {
            try ignoringMissing { try netlink.deleteBridgeVLAN(index: port.index, BridgeVLAN(vid: 1)) }
        }
        if config.vlan != 0 {
            try netlink.addBridgeVLAN(
                index: port.index, BridgeVLAN(vid: UInt16(config.vlan), pvid: true, untagged: true))
        }
        let trunk = try trunkRanges(config)
        for range in trunk {
            try netlink.addBridgeVLAN(
                index: port.index, BridgeVLAN(range: UInt16(range.lowerBound)...UInt16(range.upperBound)))
        }
        if config.vlan == 0 && !trunk.isEmpty && !config.preserveDefaultVlan {
            try netlink.addBridgeVLAN(index: port.index, BridgeVLAN(vid: 1, pvid: true, untagged: true))
        }
    }

    private static func trunkRanges(_ config: BridgeConfig) throws -> [ClosedRange<Int>] {
        do { return try config.trunkVLANs() } catch .invalid(let message) {
            throw CNIError(.invalidNetworkConfig, message)
        }
    }
}
