import CNI
import IPAddressing
import Netlink
import Overlay
import PluginSupport

/// The per-network, per-host devices: the bridge containers hang off and the VXLAN device
/// enslaved to it. Created by the first ADD on a host; later ADDs (even concurrent ones) reuse
/// them, after checking they are this network's and match the config.
struct NetworkDevices {
    var bridge: Link
    var vxlan: Link

    static func ensure(
        network: String, config: OverlayConfig, underlay: Underlay, mtu: UInt32, netlink: RouteNetlink,
        kernel: PluginKernel
    ) throws -> NetworkDevices {
        let vni = config.vniValue
        let bridge = try BridgeDevice.ensure(
            BridgeSpec(name: OverlayDevices.bridgeName(vni: vni), mtu: mtu), netlink: netlink, kernel: kernel)
        let name = OverlayDevices.vxlanName(vni: vni)
        if try netlink.linkIfPresent(named: name) == nil {
            try ignoringExisting {
                try netlink.createVxlan(
                    VxlanDevice(
                        name: name, vni: vni, local: underlay.vtep, port: UInt16(config.port),
                        underlayIndex: underlay.link.index, learning: false, proxy: true, mtu: mtu))
            }
        }
        var vxlan = try netlink.link(named: name)
        try verify(vxlan, network: network, config: config, underlay: underlay)
        if vxlan.alias == nil { try netlink.setAlias(index: vxlan.index, OverlayDevices.alias(network: network)) }
        if vxlan.masterIndex != bridge.index { try netlink.setMaster(index: vxlan.index, bridge.index) }
        if !vxlan.isUp { try netlink.setLinkUp(index: vxlan.index) }
        vxlan = try netlink.link(index: vxlan.index)
        return NetworkDevices(bridge: bridge, vxlan: vxlan)
    }

    /// A device by our name that is not what this config would create is refused, not reused:
    /// silently tunnelling to the wrong VNI or from the wrong address would be worse.
    static func verify(_ link: Link, network: String, config: OverlayConfig, underlay: Underlay?) throws {
        guard link.kind == .vxlan, let info = link.vxlan else {
            throw CNIError(.invalidNetworkConfig, "\(link.name) exists and is not a VXLAN device")
        }
        if let alias = link.alias, alias != OverlayDevices.alias(network: network) {
            throw CNIError(
                .invalidNetworkConfig,
                "VNI \(config.vni) is already used on this host by another network (\(link.name) alias \"\(alias)\")")
        }
        guard info.vni == config.vniValue, info.port == nil || info.port == UInt16(config.port) else {
            throw CNIError(.invalidNetworkConfig, "\(link.name) has a different VNI or port than the config")
        }
        if let underlay, let local = info.local, local != underlay.vtep {
            throw CNIError(
                .invalidNetworkConfig,
                "\(link.name) tunnels from \(local), but the underlay address is \(underlay.vtep)")
        }
    }
}
