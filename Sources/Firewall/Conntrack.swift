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

// MARK: - Deleting by filter

extension ConntrackClient {
    /// One kernel-side filter of a delete: the attributes of one tuple it compares (the
    /// others match anything).
    struct Filter: Equatable {
        var family: IPFamily
        var inReply = false
        var source: IPAddress?
        var destination: IPAddress?
        var protocolNumber: UInt8?
        var destinationPort: UInt16?

        /// Kernel-internal flags (nf_internals.h, not in the uapi header): which attributes
        /// the filter compares.
        var flags: UInt32 {
            var flags: UInt32 = 0
            if source != nil { flags |= 1 << 0 }
            if destination != nil { flags |= 1 << 1 }
            if protocolNumber != nil { flags |= 1 << 3 }
            if destinationPort != nil { flags |= 1 << 5 }
            return flags
        }

        func matches(_ entry: ConntrackEntry) -> Bool {
            let (entrySource, entryDestination) =
                inReply ? (entry.replySource, entry.replyDestination) : (entry.source, entry.destination)
            return (source == nil || entrySource == source) && (destination == nil || entryDestination == destination)
                && (protocolNumber == nil || entry.protocolNumber == protocolNumber)
                && (destinationPort == nil || (!inReply && entry.destinationPort == destinationPort))
        }
    }

    /// Deletes every entry whose original or reply tuple has one of `addresses` as source or
    /// destination: what a container leaves behind (its own connections, masqueraded or not,
    /// and those DNAT'd to it), which a later holder of the address would otherwise inherit.
    public func forget(_ addresses: [IPAddress]) throws(FirewallError) {
        try delete(matchingAny: Self.filters(naming: addresses), byFilter: true)
    }

    /// Deletes the entries of `protocolNumber` to `destinationPort` (original direction), as
    /// `deleteEntries` does, without reading the table on kernels that delete by filter.
    public func forgetFlows(protocolNumber: UInt8, destinationPort: UInt16, family: IPFamily) throws(FirewallError) {
        try delete(
            matchingAny: [Filter(family: family, protocolNumber: protocolNumber, destinationPort: destinationPort)],
            byFilter: true)
    }

    /// Four filters per address: source and destination of either tuple.
    static func filters(naming addresses: [IPAddress]) -> [Filter] {
        Array(Set(addresses)).sorted { $0.description < $1.description }.flatMap { address in
            [false, true].flatMap { inReply in
                [
                    Filter(family: address.family, inReply: inReply, source: address),
                    Filter(family: address.family, inReply: inReply, destination: address),
                ]
            }
        }
    }

    /// Kernels since 6.12 delete by filter, each filter one pass over the table in the kernel
    /// (all requests in one datagram, no entry copied out). Older kernels refuse such a request
    /// (a partial tuple is EINVAL to them, never a flush of everything): then the entries are
    /// dumped and deleted one by one. `byFilter: false` takes that path straight away.
    func delete(matchingAny filters: [Filter], byFilter: Bool) throws(FirewallError) {
        guard !filters.isEmpty else { return }
        if byFilter, try deleteByFilter(filters) { return }
        for family in IPFamily.allCases {
            let wanted = filters.filter { $0.family == family }
            guard !wanted.isEmpty else { continue }
            for entry in try entries(family: family) where wanted.contains(where: { $0.matches(entry) }) {
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
    func deleteByFilter(_ filters: [Filter]) throws(FirewallError) -> Bool {
        var datagram: [UInt8] = []
        var sequences: [UInt32] = []
        let object = "conntrack entries"
        for filter in filters {
            let sequence = session.takeSequence()
            do throws(NetlinkError) {
                datagram += try Self.filteredDeleteRequest(filter).bytes(sequence: sequence, extraFlags: NLM_F_ACK)
            } catch {
                throw FirewallError(error, object: object)
            }
            sequences.append(sequence)
        }
        let failures: [(sequence: UInt32, error: NetlinkError)]
        do throws(NetlinkError) {
            try session.transport.send(datagram)
            failures = try session.acknowledgements(
                of: Set(sequences), accepting: sequences[0]...sequences[sequences.count - 1],
                operation: "delete conntrack entries by filter")
        } catch {
            throw FirewallError(error, object: object)
        }
        guard let first = failures.first else { return true }
        if [EINVAL, EOPNOTSUPP].contains(first.error.errno) { return false }
        throw FirewallError(first.error, object: object)
    }

    /// IPCTNL_MSG_CT_DELETE with CTA_FILTER and a partial tuple: a flush of the entries of the
    /// filter's family that match it.
    static func filteredDeleteRequest(_ filter: Filter) -> MessageBuilder {
        let request = request(
            messageDelete, family: filter.family.addressFamily, operation: "delete conntrack entries")
        let isV4 = filter.family == .v4
        request.nest(UInt16(filter.inReply ? CTA_TUPLE_REPLY.rawValue : CTA_TUPLE_ORIG.rawValue)) {
            if filter.source != nil || filter.destination != nil {
                request.nest(UInt16(CTA_TUPLE_IP.rawValue)) {
                    if let source = filter.source {
                        request.put(UInt16(isV4 ? CTA_IP_V4_SRC.rawValue : CTA_IP_V6_SRC.rawValue), source.bytes)
                    }
                    if let destination = filter.destination {
                        request.put(UInt16(isV4 ? CTA_IP_V4_DST.rawValue : CTA_IP_V6_DST.rawValue), destination.bytes)
                    }
                }
            }
            if let number = filter.protocolNumber {
                request.nest(UInt16(CTA_TUPLE_PROTO.rawValue)) {
                    request.put(UInt16(CTA_PROTO_NUM.rawValue), u8: number)
                    if let port = filter.destinationPort {
                        request.put(UInt16(CTA_PROTO_DST_PORT.rawValue), be16: port)
                    }
                }
            }
        }
        request.nest(UInt16(CTA_FILTER.rawValue)) {
            request.put(
                UInt16(filter.inReply ? CTA_FILTER_REPLY_FLAGS.rawValue : CTA_FILTER_ORIG_FLAGS.rawValue),
                u32: filter.flags)
        }
        return request
    }
}
