import CNI
import IPAddressing
import NetNS
import Netlink

#if canImport(Glibc)
    import Glibc
#endif

/// The veth pair between a bridge and the container (shared by `bridge` and `vxlan-overlay`).
public struct VethSetup {
    public let host: RouteNetlink
    public let container: RouteNetlink
    public let containerNamespace: NetworkNamespace

    public struct Ports {
        public var host: Link
        public var container: Link
    }

    /// Bridge port settings of the host end.
    public struct Options {
        public var mtu: UInt32?
        public var hairpin: Bool
        public var isolated: Bool

        public init(mtu: UInt32? = nil, hairpin: Bool = false, isolated: Bool = false) {
            self.mtu = mtu
            self.hairpin = hairpin
            self.isolated = isolated
        }
    }

    public init(host: RouteNetlink, container: RouteNetlink, containerNamespace: NetworkNamespace) {
        self.host = host
        self.container = container
        self.containerNamespace = containerNamespace
    }

    /// Creates the pair with the container end born in the container netns (no rename race,
    /// no name clash on the host), already enslaved to the bridge. `configurePort` runs on the
    /// host end before it comes up (VLAN membership, for instance).
    public func create(
        attachment: Attachment, bridge: Link, options: Options, mac: MACAddress?,
        configurePort: (Link) throws -> Void = { _ in }
    ) throws -> Ports {
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
                mtu: options.mtu, peerMAC: mac, masterIndex: bridge.index))
        // Until the pair is handed back (and the caller can push its undo), a failing step
        // deletes it again: ADD leaves nothing behind.
        var handedBack = false
        defer {
            if !handedBack {
                do { try ignoringMissing { try host.deleteLink(named: hostName) } } catch {
                    cniLog("after a failed ADD, could not delete \(hostName): \(error)")
                }
            }
        }
        let hostLink = try host.link(named: hostName)
        try host.setAlias(index: hostLink.index, attachment.linkAlias)
        // A bridge port only carries frames. Without a link-local address it sends no DAD or MLD
        // flooded to every other port, and adds no IPv6 routes, which the kernel walks whenever
        // any port goes up or down: with them ADD and DEL slow down with every container.
        // Best effort: a port that keeps its link-local address still works.
        if hostLink.ipv6DeviceConfig != nil {
            do {
                try host.setIPv6AddressGeneration(index: hostLink.index, .none)
            } catch {
                cniLog("bridge port \(hostName) keeps its IPv6 link-local address: \(error)")
            }
        }
        if options.hairpin || options.isolated {
            try host.setBridgePort(
                index: hostLink.index, hairpin: options.hairpin ? true : nil, isolated: options.isolated ? true : nil)
        }
        try configurePort(hostLink)
        try host.setLinkUp(index: hostLink.index)
        let ports = Ports(
            host: try host.link(index: hostLink.index), container: try container.link(named: attachment.ifName))
        handedBack = true
        return ports
    }

    /// Tells every port of the bridge that `addresses` are now at the container end's MAC: an
    /// address just freed may have been handed straight back out, and peers that talked to its
    /// previous owner hold a REACHABLE neighbour entry with the old MAC for tens of seconds. The kernel's own announcement at link-up (`arp_notify`, `ndisc_notify`) goes
    /// out before the bridge has enabled the new port (it does so asynchronously, on the
    /// carrier change) and is dropped there; so wait for the port to forward, then announce
    /// from inside the container. Best effort: the container works either way.
    public func announce(_ ports: Ports, addresses: [IPAddress]) {
        guard !addresses.isEmpty, let mac = ports.container.mac else { return }
        do {
            if !(try waitUntilForwarding(ports.host)) {
                cniLog("bridge port \(ports.host.name) is not forwarding yet; announcing anyway")
            }
            let sender = try containerNamespace.perform { () throws(NetlinkError) in try LinkLayerSender() }
            try sender.announce(
                addresses.map { NeighbourAnnouncement(address: $0, mac: mac) }, index: ports.container.index)
        } catch {
            cniLog("could not announce \(addresses.map(\.description)) at \(mac): \(error)")
        }
    }

    /// Polls the port's STP state (1 ms apart, at most `seconds`): true once it forwards.
    private func waitUntilForwarding(_ port: Link, seconds: Double = 1) throws -> Bool {
        let forwarding: UInt8 = 3
        var waited = 0.0
        while true {
            if try host.link(index: port.index).bridgePortState == forwarding { return true }
            if waited >= seconds { return false }
            usleep(1000)
            waited += 0.001
        }
    }

    /// Deletes the host end (and with it the container end). A link with the name but another
    /// owner is left alone; one with no alias is ours from an ADD cut short before the alias.
    public static func deleteHostEnd(of attachment: Attachment, netlink: RouteNetlink) throws {
        guard let link = try netlink.linkIfPresent(named: attachment.hostVethName),
            link.kind == .veth, link.alias == nil || link.alias == attachment.linkAlias
        else { return }
        try ignoringMissing { try netlink.deleteLink(index: link.index) }
    }
}
