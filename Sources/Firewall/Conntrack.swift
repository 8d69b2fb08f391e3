import CPierShim
import IPAddressing
import NetNS
import NetlinkCore

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
    private let session: NetlinkSession

    public var transport: NetfilterTransport { session.transport }

    static let subsystem = UInt16(NFNL_SUBSYS_CTNETLINK)
    static let messageNew = UInt16(IPCTNL_MSG_CT_NEW.rawValue)
    static let messageGet = UInt16(IPCTNL_MSG_CT_GET.rawValue)
    static let messageDelete = UInt16(IPCTNL_MSG_CT_DELETE.rawValue)

    public init(transport: NetfilterTransport, firstSequence: UInt32 = 1) {
        session = NetlinkSession(transport: transport, firstSequence: firstSequence)
    }

    public init(namespace: NetworkNamespace? = nil) throws(FirewallError) {
        session = try .netfilter(namespace: namespace)
    }

    /// A ctnetlink request: nlmsghdr, then nfgenmsg (family, NFNETLINK_V0, resource id 0).
    static func request(_ message: UInt16, family: UInt8, operation: String) -> MessageBuilder {
        let builder = MessageBuilder(type: subsystem << 8 | message, flags: 0, operation: operation)
        builder.putFixedHeader([family, UInt8(NFNETLINK_V0), 0, 0])
        return builder
    }

    /// Every entry of one address family (dumped and decoded).
    public func entries(family: IPFamily) throws(FirewallError) -> [ConntrackEntry] {
        let messages: [NetlinkMessage]
        do throws(NetlinkError) {
            messages = try session.dump {
                Self.request(Self.messageGet, family: family.addressFamily, operation: "list conntrack entries")
            }
        } catch {
            throw FirewallError(error, object: "\(family)")
        }
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
            do throws(NetlinkError) {
                try session.execute(Self.deleteRequest(entry))
                deleted += 1
            } catch {
                let failure = FirewallError(
                    error,
                    object: "\(entry.source):\(entry.sourcePort) -> \(entry.destination):\(entry.destinationPort)")
                if failure.isNotFound { continue }
                throw failure
            }
        }
        return deleted
    }

    /// IPCTNL_MSG_CT_DELETE naming the entry by its original tuple (and zone).
    static func deleteRequest(_ entry: ConntrackEntry) -> MessageBuilder {
        let request = request(
            messageDelete, family: entry.source.family.addressFamily, operation: "delete conntrack entry")
        let isV4 = entry.source.family == .v4
        request.nest(UInt16(CTA_TUPLE_ORIG.rawValue)) {
            request.nest(UInt16(CTA_TUPLE_IP.rawValue)) {
                request.put(UInt16(isV4 ? CTA_IP_V4_SRC.rawValue : CTA_IP_V6_SRC.rawValue), entry.source.bytes)
                request.put(UInt16(isV4 ? CTA_IP_V4_DST.rawValue : CTA_IP_V6_DST.rawValue), entry.destination.bytes)
            }
            request.nest(UInt16(CTA_TUPLE_PROTO.rawValue)) {
                request.put(UInt16(CTA_PROTO_NUM.rawValue), u8: entry.protocolNumber)
                request.put(UInt16(CTA_PROTO_SRC_PORT.rawValue), be16: entry.sourcePort)
                request.put(UInt16(CTA_PROTO_DST_PORT.rawValue), be16: entry.destinationPort)
            }
        }
        if let zone = entry.zone { request.put(UInt16(CTA_ZONE.rawValue), be16: zone) }
        return request
    }

    static func decode(_ message: NetlinkMessage) -> ConntrackEntry? {
        // After the 4-byte nfgenmsg.
        let attributes = Attributes(message.payload, from: 4)
        guard let original = attributes.nested(UInt16(CTA_TUPLE_ORIG.rawValue)),
            let ip = original.nested(UInt16(CTA_TUPLE_IP.rawValue)),
            let proto = original.nested(UInt16(CTA_TUPLE_PROTO.rawValue)),
            let source = (ip[UInt16(CTA_IP_V4_SRC.rawValue)] ?? ip[UInt16(CTA_IP_V6_SRC.rawValue)])
                .flatMap(IPAddress.init(bytes:)),
            let destination = (ip[UInt16(CTA_IP_V4_DST.rawValue)] ?? ip[UInt16(CTA_IP_V6_DST.rawValue)])
                .flatMap(IPAddress.init(bytes:)),
            let number = proto.u8(UInt16(CTA_PROTO_NUM.rawValue))
        else { return nil }
        return ConntrackEntry(
            protocolNumber: number, source: source, destination: destination,
            sourcePort: proto.be16(UInt16(CTA_PROTO_SRC_PORT.rawValue)) ?? 0,
            destinationPort: proto.be16(UInt16(CTA_PROTO_DST_PORT.rawValue)) ?? 0,
            zone: attributes.be16(UInt16(CTA_ZONE.rawValue)))
    }
}
