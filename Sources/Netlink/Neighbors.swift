import CPierShim
import IPAddressing

#if canImport(Glibc)
    import Glibc
#endif

/// NUD_* neighbour states (a bit set in the kernel; Pier only sets one at a time).
public struct NeighborState: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let incomplete = NeighborState(rawValue: 0x01)
    public static let reachable = NeighborState(rawValue: 0x02)
    public static let stale = NeighborState(rawValue: 0x04)
    public static let delay = NeighborState(rawValue: 0x08)
    public static let probe = NeighborState(rawValue: 0x10)
    public static let failed = NeighborState(rawValue: 0x20)
    public static let noARP = NeighborState(rawValue: 0x40)
    public static let permanent = NeighborState(rawValue: 0x80)
}

/// NTF_* neighbour flags.
public struct NeighborFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let use = NeighborFlags(rawValue: UInt8(NTF_USE))
    /// The entry belongs to the device itself (a VXLAN device's own FDB).
    public static let ownedByDevice = NeighborFlags(rawValue: UInt8(NTF_SELF))
    /// The entry belongs to the bridge the device is enslaved to.
    public static let master = NeighborFlags(rawValue: UInt8(NTF_MASTER))
    public static let proxy = NeighborFlags(rawValue: UInt8(NTF_PROXY))
    public static let externallyLearned = NeighborFlags(rawValue: UInt8(NTF_EXT_LEARNED))
    public static let router = NeighborFlags(rawValue: UInt8(NTF_ROUTER))
}

/// An IP neighbour (ARP / NDP) entry.
public struct Neighbor: Sendable, Equatable {
    public var index: Int32
    public var address: IPAddress
    public var mac: MACAddress?
    public var state: NeighborState
    public var flags: NeighborFlags

    public init(
        index: Int32, address: IPAddress, mac: MACAddress?, state: NeighborState = .permanent,
        flags: NeighborFlags = []
    ) {
        self.index = index
        self.address = address
        self.mac = mac
        self.state = state
        self.flags = flags
    }

    init?(_ message: NetlinkMessage) {
        guard message.type == UAPI.rtmNewNeigh, message.payload.count >= 12 else { return nil }
        let payload = message.payload
        guard payload[0] == UAPI.afInet || payload[0] == UAPI.afInet6 else { return nil }
        let attributes = Attributes(payload, from: 12)
        guard let address = attributes.ip(attr(NDA_DST)) else { return nil }
        self.address = address
        index = readI32(payload, 4)
        state = NeighborState(rawValue: readU16(payload, 8))
        flags = NeighborFlags(rawValue: payload[10])
        mac = attributes.mac(attr(NDA_LLADDR))
    }
}

extension RouteNetlink {
    /// Adds a neighbour entry; fails with EEXIST if one for that address is there.
    public func addNeighbor(_ neighbor: Neighbor) throws(NetlinkError) {
        try sendNeighbor(neighbor, type: UAPI.rtmNewNeigh, flags: UAPI.create, verb: "add")
    }

    /// Adds or overwrites the entry for that address (what the overlay's reconciler wants).
    public func replaceNeighbor(_ neighbor: Neighbor) throws(NetlinkError) {
        try sendNeighbor(neighbor, type: UAPI.rtmNewNeigh, flags: UAPI.replace, verb: "replace")
    }

    public func deleteNeighbor(_ neighbor: Neighbor) throws(NetlinkError) {
        try sendNeighbor(neighbor, type: UAPI.rtmDelNeigh, flags: 0, verb: "delete")
    }

    /// IP neighbours of one family, optionally of one link.
    public func neighbors(family: IPFamily, index: Int32? = nil) throws(NetlinkError) -> [Neighbor] {
        try dump {
            let message = MessageBuilder(type: UAPI.rtmGetNeigh, flags: 0, operation: "list \(family) neighbours")
            message.putFixedHeader(FixedHeader.nd(family: family.addressFamily, index: 0, state: 0, flags: 0, type: 0))
            return message
        }.compactMap(Neighbor.init).filter { index == nil || $0.index == index }
    }

    private func sendNeighbor(_ neighbor: Neighbor, type: UInt16, flags: Int32, verb: String) throws(NetlinkError) {
        var operation = "\(verb) neighbour \(neighbor.address)"
        if let mac = neighbor.mac { operation += " lladdr \(mac)" }
        operation += " on link \(neighbor.index)"
        let message = MessageBuilder(type: type, flags: flags, operation: operation)
        message.putFixedHeader(
            FixedHeader.nd(
                family: neighbor.address.family.addressFamily, index: neighbor.index, state: neighbor.state.rawValue,
                flags: neighbor.flags.rawValue, type: UInt8(RTN_UNICAST)))
        message.put(attr(NDA_DST), neighbor.address.bytes)
        if let mac = neighbor.mac { message.put(attr(NDA_LLADDR), mac.bytes) }
        try execute(message)
    }
}
