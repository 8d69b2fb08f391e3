import CPierShim
import IPAddressing
import NetNS
import NetlinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// One conntrack entry: its original-direction tuple (what the first packet looked like),
/// which names it for a delete, and the addresses of its reply tuple (where NAT shows).
public struct ConntrackEntry: Sendable, Hashable {
    public var protocolNumber: UInt8
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var zone: UInt16?
    /// ICMP and ICMPv6 entries are keyed by identifier, type and code instead of ports.
    public var icmp: ICMPKey?
    public var replySource: IPAddress?
    public var replyDestination: IPAddress?

    public struct ICMPKey: Sendable, Hashable {
        public var identifier: UInt16
        public var type: UInt8
        public var code: UInt8

        public init(identifier: UInt16, type: UInt8, code: UInt8) {
            self.identifier = identifier
            self.type = type
            self.code = code
        }
    }

    public init(
        protocolNumber: UInt8, source: IPAddress, destination: IPAddress, sourcePort: UInt16,
        destinationPort: UInt16, zone: UInt16? = nil, icmp: ICMPKey? = nil, replySource: IPAddress? = nil,
        replyDestination: IPAddress? = nil
    ) {
        self.protocolNumber = protocolNumber
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.zone = zone
        self.icmp = icmp
        self.replySource = replySource
        self.replyDestination = replyDestination
    }

    /// Whether either tuple has `address` at either end.
    public func names(_ address: IPAddress) -> Bool {
        source == address || destination == address || replySource == address || replyDestination == address
    }
}

/// Conntrack over netlink (NFNL_SUBSYS_CTNETLINK), for what portmap needs: after publishing
/// a UDP port, entries created before the DNAT existed keep steering packets to the old
/// destination (UDP "connections" never end), so they must be deleted.
///
/// Implemented as a dump plus delete-by-tuple, which every kernel supports; kernel-side
/// filtered flushes (CTA_FILTER) cover too few keys on older kernels to rely on.
public final class ConntrackClient {
    let session: NetlinkSession

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
                if let icmp = entry.icmp {
                    request.put(
                        UInt16(isV4 ? CTA_PROTO_ICMP_ID.rawValue : CTA_PROTO_ICMPV6_ID.rawValue), be16: icmp.identifier)
                    request.put(
                        UInt16(isV4 ? CTA_PROTO_ICMP_TYPE.rawValue : CTA_PROTO_ICMPV6_TYPE.rawValue), u8: icmp.type)
                    request.put(
                        UInt16(isV4 ? CTA_PROTO_ICMP_CODE.rawValue : CTA_PROTO_ICMPV6_CODE.rawValue), u8: icmp.code)
                } else {
                    request.put(UInt16(CTA_PROTO_SRC_PORT.rawValue), be16: entry.sourcePort)
                    request.put(UInt16(CTA_PROTO_DST_PORT.rawValue), be16: entry.destinationPort)
                }
            }
        }
        if let zone = entry.zone { request.put(UInt16(CTA_ZONE.rawValue), be16: zone) }
        return request
    }

    static func decode(_ message: NetlinkMessage) -> ConntrackEntry? {
        // After the 4-byte nfgenmsg.
        let attributes = Attributes(message.payload, from: 4)
        guard let original = attributes.nested(UInt16(CTA_TUPLE_ORIG.rawValue)),
            let (source, destination) = addresses(of: original),
            let proto = original.nested(UInt16(CTA_TUPLE_PROTO.rawValue)),
            let number = proto.u8(UInt16(CTA_PROTO_NUM.rawValue))
        else { return nil }
        var icmp: ConntrackEntry.ICMPKey?
        if let identifier = proto.be16(UInt16(CTA_PROTO_ICMP_ID.rawValue)),
            let type = proto.u8(UInt16(CTA_PROTO_ICMP_TYPE.rawValue)),
            let code = proto.u8(UInt16(CTA_PROTO_ICMP_CODE.rawValue))
        {
            icmp = .init(identifier: identifier, type: type, code: code)
        } else if let identifier = proto.be16(UInt16(CTA_PROTO_ICMPV6_ID.rawValue)),
            let type = proto.u8(UInt16(CTA_PROTO_ICMPV6_TYPE.rawValue)),
            let code = proto.u8(UInt16(CTA_PROTO_ICMPV6_CODE.rawValue))
        {
            icmp = .init(identifier: identifier, type: type, code: code)
        }
        let reply = attributes.nested(UInt16(CTA_TUPLE_REPLY.rawValue)).flatMap(addresses(of:))
        return ConntrackEntry(
            protocolNumber: number, source: source, destination: destination,
            sourcePort: proto.be16(UInt16(CTA_PROTO_SRC_PORT.rawValue)) ?? 0,
            destinationPort: proto.be16(UInt16(CTA_PROTO_DST_PORT.rawValue)) ?? 0,
            zone: attributes.be16(UInt16(CTA_ZONE.rawValue)), icmp: icmp, replySource: reply?.source,
            replyDestination: reply?.destination)
    }

    private static func addresses(of tuple: Attributes) -> (source: IPAddress, destination: IPAddress)? {
        guard let ip = tuple.nested(UInt16(CTA_TUPLE_IP.rawValue)),
            let source = (ip[UInt16(CTA_IP_V4_SRC.rawValue)] ?? ip[UInt16(CTA_IP_V6_SRC.rawValue)])
                .flatMap(IPAddress.init(bytes:)),
            let destination = (ip[UInt16(CTA_IP_V4_DST.rawValue)] ?? ip[UInt16(CTA_IP_V6_DST.rawValue)])
                .flatMap(IPAddress.init(bytes:))
        else { return nil }
        return (source, destination)
    }
}

// MARK: - Forgetting addresses

extension ConntrackClient {
    /// Which end of which tuple a kernel-side filter compares with an address.
    enum TupleEnd: CaseIterable {
        case originalSource, originalDestination, replySource, replyDestination

        var isReply: Bool { self == .replySource || self == .replyDestination }
        var isSource: Bool { self == .originalSource || self == .replySource }
    }

    /// Kernel-internal filter flags (nf_internals.h): bit 0 compares the source address,
    /// bit 1 the destination. The uapi header does not export them.
    static let filterSourceAddress: UInt32 = 1 << 0
    static let filterDestinationAddress: UInt32 = 1 << 1

    /// Deletes every entry whose original or reply tuple has one of `addresses` as source or
    /// destination: what a container leaves behind (its own connections, masqueraded or not,
    /// and those DNAT'd to it), which a later holder of the address would otherwise inherit.
    ///
    /// Kernels since 6.12 delete by filter in one pass each (one request per address and
    /// tuple end, all in one datagram); older kernels refuse such a request (a partial tuple
    /// is EINVAL to them, never a flush of everything), and then the entries are dumped and
    /// deleted one by one.
    public func forget(_ addresses: [IPAddress]) throws(FirewallError) {
        try forget(addresses, byFilter: true)
    }

    /// `byFilter: false` skips straight to the dump-and-delete path older kernels take.
    func forget(_ addresses: [IPAddress], byFilter: Bool) throws(FirewallError) {
        let unique = Array(Set(addresses)).sorted { $0.description < $1.description }
        guard !unique.isEmpty else { return }
        if byFilter, try deleteByFilter(unique) { return }
        for family in IPFamily.allCases where unique.contains(where: { $0.family == family }) {
            let wanted = unique.filter { $0.family == family }
            for entry in try entries(family: family) where wanted.contains(where: entry.names) {
                try delete(entry)
            }
        }
    }

    /// Deletes `entry`; an entry that vanished on its own in the meantime is not an error.
    public func delete(_ entry: ConntrackEntry) throws(FirewallError) {
        do throws(NetlinkError) {
            try session.execute(Self.deleteRequest(entry))
        } catch {
            let failure = FirewallError(
                error, object: "\(entry.source):\(entry.sourcePort) -> \(entry.destination):\(entry.destinationPort)")
            if failure.isNotFound { return }
            throw failure
        }
    }

    /// False when the kernel does not delete by filter (EINVAL, EOPNOTSUPP).
    func deleteByFilter(_ addresses: [IPAddress]) throws(FirewallError) -> Bool {
        var datagram: [UInt8] = []
        var sequences: [UInt32] = []
        for address in addresses {
            for end in TupleEnd.allCases {
                let sequence = session.takeSequence()
                do throws(NetlinkError) {
                    datagram += try Self.filteredDeleteRequest(address, end).bytes(
                        sequence: sequence, extraFlags: NLM_F_ACK)
                } catch {
                    throw FirewallError(error, object: "\(address)")
                }
                sequences.append(sequence)
            }
        }
        let failures: [(sequence: UInt32, error: NetlinkError)]
        do throws(NetlinkError) {
            try session.transport.send(datagram)
            failures = try session.acknowledgements(
                of: Set(sequences), accepting: sequences[0]...sequences[sequences.count - 1],
                operation: "delete conntrack entries by filter")
        } catch {
            throw FirewallError(error, object: addresses.map(\.description).joined(separator: ", "))
        }
        guard let first = failures.first else { return true }
        if [EINVAL, EOPNOTSUPP].contains(first.error.errno) { return false }
        throw FirewallError(first.error, object: addresses.map(\.description).joined(separator: ", "))
    }

    /// IPCTNL_MSG_CT_DELETE with CTA_FILTER and no complete tuple: a flush of the entries of
    /// the address's family whose `end` is `address`.
    static func filteredDeleteRequest(_ address: IPAddress, _ end: TupleEnd) -> MessageBuilder {
        let request = request(
            messageDelete, family: address.family.addressFamily, operation: "delete conntrack entries")
        let isV4 = address.family == .v4
        let flags = end.isSource ? filterSourceAddress : filterDestinationAddress
        request.nest(UInt16(end.isReply ? CTA_TUPLE_REPLY.rawValue : CTA_TUPLE_ORIG.rawValue)) {
            request.nest(UInt16(CTA_TUPLE_IP.rawValue)) {
                let type =
                    end.isSource
                    ? (isV4 ? CTA_IP_V4_SRC.rawValue : CTA_IP_V6_SRC.rawValue)
                    : (isV4 ? CTA_IP_V4_DST.rawValue : CTA_IP_V6_DST.rawValue)
                request.put(UInt16(type), address.bytes)
            }
        }
        request.nest(UInt16(CTA_FILTER.rawValue)) {
            request.put(
                UInt16(end.isReply ? CTA_FILTER_REPLY_FLAGS.rawValue : CTA_FILTER_ORIG_FLAGS.rawValue), u32: flags)
        }
        return request
    }
}
