import CNI
import IPAddressing
import NetNS
import Netlink
import PluginSupport

/// The veth pair between the bridge and the container.
struct VethSetup {
    let host: RouteNetlink
    let container: RouteNetlink
    let containerNamespace: NetworkNamespace

    struct Ports {
        var host: Link
        var container: Link
    }

    /// Creates the pair with the container end born in the container netns (no rename race,
    /// no name clash on the host), already enslaved to the bridge.
    func create(attachment: Attachment, bridge: Link, config: BridgeConfig, mac: MACAddress?) throws -> Ports {
        let hostName = attachment.hostVethName
        if let existing = try host.linkIfPresent(named: hostName) {
            guard existing.alias == attachment.linkAlias else {
                throw CNIError(
                    .internalError,
                    "host interface \(hostName) already exists and is not this attachment's"
                        + " (alias \"\(existing.alias ?? "")\")")
            }
            // Left over from an earlier ADD of this same attachment that was never deleted.
            try host.deleteLink(index: existing.index)
        }
        try host.createVeth(
            VethPair(
                name: hostName, peerName: attachment.ifName, peerNamespace: .namespace(containerNamespace),
                mtu: config.mtu.map { UInt32($0) }, peerMAC: mac, masterIndex: bridge.index))
        let hostLink = try host.link(named: hostName)
        try host.setAlias(index: hostLink.index, attachment.linkAlias)
        if config.hairpinMode || config.portIsolation {
            try host.setBridgePort(
                index: hostLink.index, hairpin: config.hairpinMode ? true : nil,
                isolated: config.portIsolation ? true : nil)
        }
        try? Sysctl.ensure("net/ipv6/conf/\(hostName)/accept_ra", "0")
        if config.usesVLANs { try VLANSupport.apply(config, port: hostLink, netlink: host) }
        try host.setLinkUp(index: hostLink.index)
        return Ports(
            host: try host.link(index: hostLink.index), container: try container.link(named: attachment.ifName))
    }

    /// Deletes the host end (and with it the container end). A link with the name but another
    /// owner is left alone; one with no alias is ours from an ADD cut short before the alias.
    static func deleteHostEnd(of attachment: Attachment, netlink: RouteNetlink) throws {
        guard let link = try netlink.linkIfPresent(named: attachment.hostVethName),
            link.kind == .veth, link.alias == nil || link.alias == attachment.linkAlias
        else { return }
        try ignoringMissing { try netlink.deleteLink(index: link.index) }
    }
}
