import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

/// What the `tuning` plugin reads and changes on one link: the `Link` fields plus the
/// transmit queue length, which `Link` does not carry.
public struct TunableLink: Sendable, Equatable {
    public var link: Link
    /// IFLA_TXQLEN; nil when the kernel did not report it.
    public var transmitQueueLength: UInt32?

    public var index: Int32 { link.index }
    public var isPromiscuous: Bool { link.isPromiscuous }
    public var isAllMulticast: Bool { link.flags & TuningFlags.allMulticast != 0 }
    public var isLoopback: Bool { link.flags & TuningFlags.loopback != 0 }
}

/// IFF_* flags the link setters in Links.swift do not name.
enum TuningFlags {
    static let allMulticast = UInt32(IFF_ALLMULTI)
    static let loopback = UInt32(IFF_LOOPBACK)
}

extension RouteNetlink {
    /// One RTM_GETLINK by name, keeping IFLA_TXQLEN beside the usual link fields.
    public func tunableLink(named name: String) throws(NetlinkError) -> TunableLink {
        let operation = "get link \(name)"
        try validateInterfaceName(name, operation: operation)
        let message = MessageBuilder(type: UAPI.rtmGetLink, flags: 0, operation: operation)
        message.putFixedHeader(FixedHeader.ifinfo())
        message.put(attr(IFLA_IFNAME), string: name)
        message.put(attr(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
        for reply in try execute(message) {
            guard let link = Link(reply) else { continue }
            let length = Attributes(reply.payload, from: 16).u32(attr(IFLA_TXQLEN))
            return TunableLink(link: link, transmitQueueLength: length)
        }
        throw NetlinkError(
            .protocolViolation, operation: operation, errno: EPROTO, detail: "no link in the kernel's reply")
    }

    /// All-multicast mode (IFF_ALLMULTI through ifi_change, like `setPromiscuous`): the kernel
    /// counts it, so only a change of the flag moves the counter.
    public func setAllMulticast(index: Int32, _ on: Bool) throws(NetlinkError) {
        try changeLink(
            index: index, operation: "set link \(index) allmulticast \(on ? "on" : "off")",
            flags: on ? TuningFlags.allMulticast : 0, change: TuningFlags.allMulticast)
    }

    /// The transmit queue length (`ip link set DEV txqueuelen N`).
    public func setTransmitQueueLength(index: Int32, _ length: UInt32) throws(NetlinkError) {
        try changeLink(index: index, operation: "set link \(index) txqueuelen \(length)") { message in
            message.put(attr(IFLA_TXQLEN), u32: length)
        }
    }
}
