import CPierShim
import IPAddressing

#if canImport(Glibc)
    import Glibc
#endif

/// "`address` is at `mac`", told to every host on a link: a gratuitous ARP reply (IPv4) or an
/// unsolicited neighbour advertisement with the override flag (IPv6), sent to the broadcast or
/// all-nodes address. A Linux neighbour that already has an entry for the address takes the
/// new MAC at once (STALE, so it is confirmed on next use); one without an entry ignores it.
///
/// Replies rather than requests: a VXLAN device with ARP proxy answers ARP *requests* itself,
/// and neither crosses the tunnel, so an announcement stays on the link it was sent to.
public struct NeighbourAnnouncement: Sendable, Hashable {
    public var address: IPAddress
    public var mac: MACAddress

    public init(address: IPAddress, mac: MACAddress) {
        self.address = address
        self.mac = mac
    }

    /// The whole Ethernet frame, source MAC `mac`.
    public var frame: [UInt8] {
        address.family == .v4 ? arpFrame : neighbourAdvertisementFrame
    }

    private var arpFrame: [UInt8] {
        var frame = [UInt8](repeating: 0xff, count: 6) + mac.bytes + [0x08, 0x06]
        frame += [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02]  // Ethernet, IPv4, reply
        // Sender and target are both "address at mac": a gratuitous reply.
        frame += mac.bytes + address.bytes + mac.bytes + address.bytes
        return frame
    }

    private var neighbourAdvertisementFrame: [UInt8] {
        let allNodes: [UInt8] = [0xff, 0x02] + [UInt8](repeating: 0, count: 13) + [1]
        // ICMPv6 type 136, override flag, the target, and its link-layer address option.
        var icmp: [UInt8] = [136, 0, 0, 0, 0x20, 0, 0, 0] + address.bytes + [2, 1] + mac.bytes
        let checksum = Self.icmpv6Checksum(source: address.bytes, destination: allNodes, message: icmp)
        icmp[2] = UInt8(checksum >> 8)
        icmp[3] = UInt8(checksum & 0xff)
        // Hop limit 255: receivers drop neighbour discovery that may have crossed a router.
        var frame: [UInt8] = [0x33, 0x33, 0, 0, 0, 1] + mac.bytes + [0x86, 0xdd]
        frame += [0x60, 0, 0, 0, UInt8(icmp.count >> 8), UInt8(icmp.count & 0xff), 58, 255]
        frame += address.bytes + allNodes + icmp
        return frame
    }

    static func icmpv6Checksum(source: [UInt8], destination: [UInt8], message: [UInt8]) -> UInt16 {
        var pseudo = source + destination
        pseudo += [0, 0, UInt8(message.count >> 8), UInt8(message.count & 0xff), 0, 0, 0, 58]
        pseudo += message
        if pseudo.count % 2 == 1 { pseudo.append(0) }
        var sum: UInt32 = 0
        for index in stride(from: 0, to: pseudo.count, by: 2) {
            sum += UInt32(pseudo[index]) << 8 | UInt32(pseudo[index + 1])
        }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

/// A packet socket that only sends whole Ethernet frames out of a given link. It belongs to
/// the network namespace of the thread that opened it (open it inside `NetworkNamespace.perform`
/// to send from a container's interface).
public final class LinkLayerSender {
    let descriptor: Int32

    public init() throws(NetlinkError) {
        // Protocol 0: the socket receives nothing, so nothing queues up on it.
        descriptor = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw NetlinkError(.socket, operation: "open packet socket", errno: Glibc.errno)
        }
    }

    /// Closing a packet socket waits for an RCU grace period (`packet_release` calls
    /// `synchronize_net` for every packet socket, bound or not: 10–15 ms), and so does a process
    /// exiting with one open: that wait would be on every ADD that announces. A detached
    /// grandchild takes the last reference and pays it instead; the frames are already sent.
    deinit { Self.closeDetached(descriptor) }

    /// Closes `descriptor`, leaving its release to a detached grandchild (`pier_close_detached`):
    /// true if the grandchild took it over, false if it was released here.
    @discardableResult
    static func closeDetached(_ descriptor: Int32) -> Bool { pier_close_detached(descriptor) == 0 }

    /// Sends each announcement out of link `index`.
    public func announce(_ announcements: [NeighbourAnnouncement], index: Int32) throws(NetlinkError) {
        for announcement in announcements {
            try send(
                announcement.frame, index: index, operation: "announce \(announcement.address) at \(announcement.mac)")
        }
    }

    public func send(_ frame: [UInt8], index: Int32, operation: String) throws(NetlinkError) {
        // struct sockaddr_ll (linux/if_packet.h, not in Swift's Glibc): family, protocol,
        // ifindex, hatype, pkttype, halen, addr[8]; only the link and destination matter.
        var address = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: UInt16(AF_PACKET)) { address.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: index) { address.replaceSubrange(4..<8, with: $0) }
        address[11] = 6
        address.replaceSubrange(12..<18, with: frame[0..<6])
        let sent = frame.withUnsafeBytes { bytes in
            address.withUnsafeBytes { raw in
                sendto(
                    descriptor, bytes.baseAddress, bytes.count, 0,
                    raw.baseAddress?.assumingMemoryBound(to: sockaddr.self),
                    socklen_t(raw.count))
            }
        }
        guard sent == frame.count else {
            throw NetlinkError(.socket, operation: operation + " on link \(index)", errno: Glibc.errno)
        }
    }
}
