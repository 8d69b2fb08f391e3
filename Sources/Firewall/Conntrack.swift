import IPAddressing
import NetNS

#if canImport(Glibc)
    import Glibc
#endif

/// One conntrack entry's original-direction tuple (what the first packet looked like).
public struct ConntrackEntry: Sendable, Hashable {
    public var protocolNumber: UInt8
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var zone: UInt16?

    public init(
        protocolNumber: UInt8, source: IPAddress, destination: IPAddress, sourcePort: UInt16,
        destinationPort: UInt16, zone: UInt16? = nil
    ) {
        self.protocolNumber = protocolNumber
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.zone = zone
    }
}

/// Conntrack over netlink (NFNL_SUBSYS_CTNETLINK), for what portmap needs: after publishing
/// a UDP port, entries created before the DNAT existed keep steering packets to the old
/// destination (UDP "connections" never end), so they must be deleted.
///
/// Implemented as a dump plus delete-by-tuple, which every kernel supports; kernel-side
/// filtered flushes (CTA_FILTER) cover too few keys on older kernels to rely on.
public final class ConntrackClient {
    public let transport: NetfilterTransport
    private var nextSequence: UInt32

    static let subsystem: UInt16 = 1  // NFNL_SUBSYS_CTNETLINK
    static let messageNew: UInt16 = 0
    static let messageGet: UInt16 = 1
    static let messageDelete: UInt16 = 2

    public init(transport: NetfilterTransport, firstSequence: UInt32 = 1) {
        self.transport = transport
        nextSequence = firstSequence
    }

    public convenience init(namespace: NetworkNamespace? = nil) throws(FirewallError) {
        let transport = try NetlinkSocketTransport(namespace: namespace)
        self.init(transport: transport, firstSequence: UInt32(truncatingIfNeeded: time(nil)))
    }

    private func takeSequence() -> UInt32 {
        defer { nextSequence &+= 1 }
        return nextSequence
    }

    /// Every entry of one address family (dumped and decoded).
    public func entries(family: IPFamily) throws(FirewallError) -> [ConntrackEntry] {
        let sequence = takeSequence()
        let request = NetlinkMessageWriter(
            type: Self.subsystem << 8 | Self.messageGet, flags: nlmFRequest | nlmFDump, sequence: sequence,
            family: family.addressFamily)
        try transport.send(request.bytes)
        let (messages, _) = try collectReplies(
            from: transport, sequence: sequence, dump: true, operation: "list conntrack entries", object: "\(family)")
        return messages.compactMap { message in
            guard message.type == Self.subsystem << 8 | Self.messageNew else { return nil }
            return Self.decode(message)
        }
    }

    /// Deletes the entries for `protocolNumber` (UDP by default) to `destinationPort`,
    /// optionally only those to `destinationAddress`. Entries that vanish on their own in the
    /// meantime are not an error. Returns how many were deleted.
    @discardableResult
    public func deleteEntries(
        protocolNumber: UInt8 = 17, destinationPort: UInt16, destinationAddress: IPAddress? = nil,
        family: IPFamily = .v4
    ) throws(FirewallError) -> Int {
        let matching = try entries(family: destinationAddress?.family ?? family).filter { entry in
            entry.protocolNumber == protocolNumber && entry.destinationPort == destinationPort
                && (destinationAddress == nil || entry.destination == destinationAddress)
        }
        var deleted = 0
        for entry in matching {
            let sequence = takeSequence()
            try transport.send(Self.deleteRequest(entry, sequence: sequence))
            do throws(FirewallError) {
                _ = try collectReplies(
                    from: transport, sequence: sequence, dump: false, operation: "delete conntrack entry",
                    object: "\(entry.source):\(entry.sourcePort) -> \(entry.destination):\(entry.destinationPort)")
                deleted += 1
            } catch  where error.isNotFound {
                continue
            }
        }
        return deleted
    }

    /// IPCTNL_MSG_CT_DELETE naming the entry by its original tuple (and zone).
    static func deleteRequest(_ entry: ConntrackEntry, sequence: UInt32) -> [UInt8] {
        var writer = NetlinkMessageWriter(
            type: subsystem << 8 | messageDelete, flags: nlmFRequest | nlmFAck, sequence: sequence,
            family: entry.source.family.addressFamily)
        writer.beginNest(1)  // CTA_TUPLE_ORIG
        writer.beginNest(1)  // CTA_TUPLE_IP
        let isV4 = entry.source.family == .v4
        writer.put(isV4 ? 1 : 3, entry.source.bytes)  // CTA_IP_V4_SRC / CTA_IP_V6_SRC
        writer.put(isV4 ? 2 : 4, entry.destination.bytes)  // CTA_IP_V4_DST / CTA_IP_V6_DST
        writer.endNest()
        writer.beginNest(2)  // CTA_TUPLE_PROTO
        writer.put(1, [entry.protocolNumber])  // CTA_PROTO_NUM
        writer.put(2, bigEndian(entry.sourcePort))  // CTA_PROTO_SRC_PORT
        writer.put(3, bigEndian(entry.destinationPort))  // CTA_PROTO_DST_PORT
        writer.endNest()
        writer.endNest()
        if let zone = entry.zone { writer.put(18, bigEndian(zone)) }  // CTA_ZONE
        return writer.bytes
    }

    static func decode(_ message: NetlinkMessage) -> ConntrackEntry? {
        let attributes = NetlinkAttribute.parse(message.bytes, from: netlinkHeaderLength + nfgenmsgLength)
        guard let original = attributes.first(where: { $0.type == 1 })?.nested,
            let ip = original.first(where: { $0.type == 1 })?.nested,
            let proto = original.first(where: { $0.type == 2 })?.nested
        else { return nil }
        func address(_ v4: UInt16, _ v6: UInt16) -> IPAddress? {
            ip.first { $0.type == v4 || $0.type == v6 }.flatMap { IPAddress(bytes: $0.value) }
        }
        guard let source = address(1, 3), let destination = address(2, 4),
            let number = proto.first(where: { $0.type == 1 })?.u8
        else { return nil }
        let zone = attributes.first { $0.type == 18 }?.bigEndianU16
        return ConntrackEntry(
            protocolNumber: number, source: source, destination: destination,
            sourcePort: proto.first { $0.type == 2 }?.bigEndianU16 ?? 0,
            destinationPort: proto.first { $0.type == 3 }?.bigEndianU16 ?? 0, zone: zone)
    }
}

private func bigEndian(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }
