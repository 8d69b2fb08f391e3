import CPierShim
import IPAddressing

#if canImport(Glibc)
    import Glibc
#endif

/// An interface address as RTM_NEWADDR describes it.
public struct Address: Sendable, Equatable {
    public var index: Int32
    /// The local address with the prefix length of its subnet.
    public var prefix: IPPrefix
    /// IFA_F_* flags (the 32-bit IFA_FLAGS when present).
    public var flags: UInt32
    public var scope: UInt8
    public var label: String?
    public var broadcast: IPAddress?

    public var family: IPFamily { prefix.family }
    public var isNoDAD: Bool { flags & UInt32(IFA_F_NODAD) != 0 }
    /// Still undergoing duplicate address detection (IPv6): not usable as a source yet.
    public var isTentative: Bool { flags & UInt32(IFA_F_TENTATIVE) != 0 }

    init?(_ message: NetlinkMessage) {
        guard message.type == UAPI.rtmNewAddr, message.payload.count >= 8 else { return nil }
        let payload = message.payload
        let attributes = Attributes(payload, from: 8)
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
        // links and equal to it otherwise, so it is only the fallback.
        guard let address = attributes.ip(attr(IFA_LOCAL)) ?? attributes.ip(attr(IFA_ADDRESS)),
            let prefix = IPPrefix(address: address, length: Int(payload[1]))
        else { return nil }
        self.prefix = prefix
        index = Int32(bitPattern: readU32(payload, 4))
        flags = attributes.u32(attr(IFA_FLAGS)) ?? UInt32(payload[2])
        scope = payload[3]
        label = attributes.string(attr(IFA_LABEL))
        broadcast = attributes.ip(attr(IFA_BROADCAST))
    }
}

/// Options for adding an address.
public struct AddressOptions: Sendable {
    /// Skip IPv6 duplicate address detection, so the address is usable at once (a container
    /// address is unique by construction: IPAM allocated it).
    public var noDAD: Bool
    /// IPv4 only: an interface label such as "eth0:1" (must start with the link's name).
    public var label: String?
    /// IPv4 only: the broadcast address; nil leaves none, `computeBroadcast` derives it.
    public var broadcast: IPAddress?
    public var computeBroadcast: Bool
    /// Replace an existing identical address instead of failing with EEXIST.
    public var replace: Bool

    public init(
        noDAD: Bool = false, label: String? = nil, broadcast: IPAddress? = nil, computeBroadcast: Bool = false,
        replace: Bool = false
    ) {
        self.noDAD = noDAD
        self.label = label
        self.broadcast = broadcast
        self.computeBroadcast = computeBroadcast
        self.replace = replace
    }
}

extension RouteNetlink {
    /// Adds `prefix` (the address and its subnet length, e.g. 10.1.0.5/24) to link `index`.
    public func addAddress(_ prefix: IPPrefix, index: Int32, options: AddressOptions = AddressOptions())
        throws(NetlinkError)
    {
        let operation = "add address \(prefix) to link \(index)"
        let message = MessageBuilder(
            type: UAPI.rtmNewAddr, flags: options.replace ? UAPI.replace : UAPI.create, operation: operation)
        let flags: UInt8 = options.noDAD ? UInt8(IFA_F_NODAD) : 0
        message.putFixedHeader(
            FixedHeader.ifaddr(
                family: prefix.family.addressFamily, prefixLength: UInt8(prefix.length), flags: flags, scope: 0,
                index: index))
        message.put(attr(IFA_LOCAL), prefix.address.bytes)
        message.put(attr(IFA_ADDRESS), prefix.address.bytes)
        if prefix.family == .v4 {
            var broadcast = options.broadcast
            if broadcast == nil, options.computeBroadcast, prefix.length < 31 { broadcast = prefix.lastAddress }
            if let broadcast { message.put(attr(IFA_BROADCAST), broadcast.bytes) }
            if let label = options.label { message.put(attr(IFA_LABEL), string: label) }
        } else if options.label != nil || options.broadcast != nil {
            throw NetlinkError(
                .invalidArgument, operation: operation, errno: EINVAL,
                detail: "labels and broadcast addresses exist only for IPv4")
        }
        try execute(message)
    }

    public func deleteAddress(_ prefix: IPPrefix, index: Int32) throws(NetlinkError) {
        let message = MessageBuilder(
            type: UAPI.rtmDelAddr, flags: 0, operation: "delete address \(prefix) from link \(index)")
        message.putFixedHeader(
            FixedHeader.ifaddr(
                family: prefix.family.addressFamily, prefixLength: UInt8(prefix.length), flags: 0, scope: 0,
                index: index))
        message.put(attr(IFA_LOCAL), prefix.address.bytes)
        message.put(attr(IFA_ADDRESS), prefix.address.bytes)
        try execute(message)
    }

    /// Addresses in the socket's namespace, optionally of one link and/or one family.
    public func addresses(index: Int32? = nil, family: IPFamily? = nil) throws(NetlinkError) -> [Address] {
        let all = try dump {
            let message = MessageBuilder(type: UAPI.rtmGetAddr, flags: 0, operation: "list addresses")
            message.putFixedHeader(
                FixedHeader.ifaddr(
                    family: family?.addressFamily ?? UAPI.afUnspec, prefixLength: 0, flags: 0, scope: 0, index: 0))
            return message
        }.compactMap(Address.init)
        return all.filter { address in
            (index == nil || address.index == index) && (family == nil || address.family == family)
        }
    }
}
