import CPierShim
import IPAddressing

#if canImport(Glibc)
    import Glibc
#endif

/// One VLAN or a range of VLANs on a bridge port (or the bridge itself).
public struct BridgeVLAN: Sendable, Equatable {
    public var vids: ClosedRange<UInt16>
    /// Untagged ingress frames are classified into this VLAN (single VLAN only).
    public var pvid: Bool
    /// Frames leave the port untagged.
    public var untagged: Bool

    public init(vid: UInt16, pvid: Bool = false, untagged: Bool = false) {
        self.vids = vid...vid
        self.pvid = pvid
        self.untagged = untagged
    }

    public init(range: ClosedRange<UInt16>, untagged: Bool = false) {
        self.vids = range
        self.pvid = false
        self.untagged = untagged
    }
}

/// A bridge forwarding-database entry: on a VXLAN device, where to tunnel frames for `mac`.
public struct FDBEntry: Sendable, Equatable {
    public var index: Int32
    public var mac: MACAddress
    /// Remote VTEP address (VXLAN) when set.
    public var destination: IPAddress?
    public var vni: UInt32?
    public var port: UInt16?
    public var vlan: UInt16?
    /// The bridge the port belongs to, as reported in dumps (NDA_MASTER).
    public var masterIndex: Int32?
    public var state: NeighborState
    public var flags: NeighborFlags

    public init(
        index: Int32, mac: MACAddress, destination: IPAddress? = nil, vni: UInt32? = nil, port: UInt16? = nil,
        vlan: UInt16? = nil, state: NeighborState = .permanent, flags: NeighborFlags = .ownedByDevice
    ) {
        self.index = index
        self.mac = mac
        self.destination = destination
        self.vni = vni
        self.port = port
        self.vlan = vlan
        self.state = state
        self.flags = flags
    }

    init?(_ message: NetlinkMessage) {
        guard message.type == UAPI.rtmNewNeigh, message.payload.count >= 12, message.payload[0] == UAPI.afBridge
        else { return nil }
        let payload = message.payload
        let attributes = Attributes(payload, from: 12)
        guard let mac = attributes.mac(attr(NDA_LLADDR)) else { return nil }
        self.mac = mac
        index = readI32(payload, 4)
        state = NeighborState(rawValue: readU16(payload, 8))
        flags = NeighborFlags(rawValue: payload[10])
        destination = attributes.ip(attr(NDA_DST))
        vni = attributes.u32(attr(NDA_VNI))
        port = attributes.be16(attr(NDA_PORT))
        vlan = attributes.u16(attr(NDA_VLAN))
        masterIndex = attributes.i32(attr(NDA_MASTER))
    }
}

extension RouteNetlink {
    // MARK: Bridge port options

    /// Sets bridge port options of an enslaved link. Hairpin lets a frame go back out of the
    /// port it came in on (a container reaching itself through a published port); isolated
    /// ports cannot talk to each other, only to non-isolated ones.
    public func setBridgePort(index: Int32, hairpin: Bool? = nil, isolated: Bool? = nil) throws(NetlinkError) {
        var parts: [String] = []
        if let hairpin { parts.append("hairpin \(hairpin ? "on" : "off")") }
        if let isolated { parts.append("isolated \(isolated ? "on" : "off")") }
        let message = MessageBuilder(
            type: UAPI.rtmSetLink, flags: 0,
            operation: "set bridge port \(index) \(parts.joined(separator: " "))")
        message.putFixedHeader(FixedHeader.ifinfo(family: UAPI.afBridge, index: index))
        // Must be nested (NLA_F_NESTED): a flat IFLA_PROTINFO is the legacy STP port state.
        message.nest(attr(IFLA_PROTINFO)) {
            if let hairpin { message.put(attr(IFLA_BRPORT_MODE), u8: hairpin ? 1 : 0) }
            if let isolated { message.put(attr(IFLA_BRPORT_ISOLATED), u8: isolated ? 1 : 0) }
        }
        try execute(message)
    }

    // MARK: VLANs (needs a kernel with bridge VLAN filtering)

    /// Adds VLANs to a bridge port, or to the bridge device itself with `onBridge` (BRIDGE_FLAGS_SELF).
    public func addBridgeVLAN(index: Int32, _ vlan: BridgeVLAN, onBridge: Bool = false) throws(NetlinkError) {
        try sendBridgeVLAN(index: index, vlan, type: UAPI.rtmSetLink, verb: "add", onBridge: onBridge)
    }

    public func deleteBridgeVLAN(index: Int32, _ vlan: BridgeVLAN, onBridge: Bool = false) throws(NetlinkError) {
        try sendBridgeVLAN(index: index, vlan, type: UAPI.rtmDelLink, verb: "delete", onBridge: onBridge)
    }

    /// Turns VLAN filtering on a bridge on or off (IFLA_BR_VLAN_FILTERING).
    public func setBridgeVLANFiltering(index: Int32, _ enabled: Bool) throws(NetlinkError) {
        try setBridgeOptions(index: index, "vlan_filtering", [IFLA_BR_VLAN_FILTERING], enabled)
    }

    /// Passes the bridge's IPv4 and IPv6 traffic through the netfilter hooks
    /// (IFLA_BR_NF_CALL_IPTABLES / _IP6TABLES; br_netfilter must be loaded). Per bridge, not
    /// the namespace-wide `bridge-nf-call-*` sysctls: a service VIP's replies from a member to a
    /// client on the same bridge are bridged, and conntrack must see them to undo the DNAT.
    public func setBridgeNetfilterCalls(index: Int32, _ enabled: Bool) throws(NetlinkError) {
        try setBridgeOptions(
            index: index, "nf_call_iptables", [IFLA_BR_NF_CALL_IPTABLES, IFLA_BR_NF_CALL_IP6TABLES], enabled)
    }

    /// Sets u8 bridge options (IFLA_INFO_DATA of a bridge) to 0 or 1 in one RTM_NEWLINK.
    private func setBridgeOptions(index: Int32, _ name: String, _ options: [Int], _ enabled: Bool)
        throws(NetlinkError)
    {
        try changeLink(index: index, operation: "set bridge \(index) \(name) \(enabled ? 1 : 0)") { message in
            message.nest(attr(IFLA_LINKINFO)) {
                message.put(attr(IFLA_INFO_KIND), string: LinkKind.bridge.rawValue)
                message.nest(attr(IFLA_INFO_DATA)) {
                    for option in options { message.put(attr(option), u8: enabled ? 1 : 0) }
                }
            }
        }
    }

    private func sendBridgeVLAN(index: Int32, _ vlan: BridgeVLAN, type: UInt16, verb: String, onBridge: Bool)
        throws(NetlinkError)
    {
        let vids =
            vlan.vids.count == 1 ? "\(vlan.vids.lowerBound)" : "\(vlan.vids.lowerBound)-\(vlan.vids.upperBound)"
        let operation = "\(verb) vlan \(vids) on link \(index)"
        guard vlan.vids.lowerBound >= 1, vlan.vids.upperBound <= 4094 else {
            throw NetlinkError(.invalidArgument, operation: operation, errno: EINVAL, detail: "VLAN ids are 1-4094")
        }
        guard !(vlan.pvid && vlan.vids.count > 1) else {
            throw NetlinkError(
                .invalidArgument, operation: operation, errno: EINVAL, detail: "a range cannot be the PVID")
        }
        var flags: UInt16 = 0
        if vlan.pvid { flags |= UInt16(BRIDGE_VLAN_INFO_PVID) }
        if vlan.untagged { flags |= UInt16(BRIDGE_VLAN_INFO_UNTAGGED) }
        let message = MessageBuilder(type: type, flags: 0, operation: operation)
        message.putFixedHeader(FixedHeader.ifinfo(family: UAPI.afBridge, index: index))
        message.nest(attr(IFLA_AF_SPEC)) {
            if onBridge { message.put(attr(IFLA_BRIDGE_FLAGS), u16: UInt16(BRIDGE_FLAGS_SELF)) }
            // struct bridge_vlan_info { u16 flags; u16 vid; }; a range is two entries marked
            // RANGE_BEGIN and RANGE_END.
            if vlan.vids.count == 1 {
                message.put(attr(IFLA_BRIDGE_VLAN_INFO), hostBytes(flags) + hostBytes(vlan.vids.lowerBound))
            } else {
                let begin = flags | UInt16(BRIDGE_VLAN_INFO_RANGE_BEGIN)
                let end = flags | UInt16(BRIDGE_VLAN_INFO_RANGE_END)
                message.put(attr(IFLA_BRIDGE_VLAN_INFO), hostBytes(begin) + hostBytes(vlan.vids.lowerBound))
                message.put(attr(IFLA_BRIDGE_VLAN_INFO), hostBytes(end) + hostBytes(vlan.vids.upperBound))
            }
        }
        try execute(message)
    }

    // MARK: Forwarding database

    /// Adds an FDB entry; fails with EEXIST when that MAC already has one.
    public func addFDB(_ entry: FDBEntry) throws(NetlinkError) {
        try sendFDB(entry, type: UAPI.rtmNewNeigh, flags: UAPI.create, verb: "add")
    }

    /// Adds or overwrites the entry for that MAC.
    public func replaceFDB(_ entry: FDBEntry) throws(NetlinkError) {
        try sendFDB(entry, type: UAPI.rtmNewNeigh, flags: UAPI.replace, verb: "replace")
    }

    /// Adds another remote for the same MAC (VXLAN head-end replication, e.g. the all-zero MAC
    /// for broadcast and unknown unicast to every peer).
    public func appendFDB(_ entry: FDBEntry) throws(NetlinkError) {
        try sendFDB(entry, type: UAPI.rtmNewNeigh, flags: UAPI.append, verb: "append")
    }

    /// Deletes the entry (with its destination, only that remote of an appended MAC).
    public func deleteFDB(_ entry: FDBEntry) throws(NetlinkError) {
        try sendFDB(entry, type: UAPI.rtmDelNeigh, flags: 0, verb: "delete")
    }

    /// FDB entries of the namespace, optionally only of link `index`.
    public func fdbEntries(index: Int32? = nil) throws(NetlinkError) -> [FDBEntry] {
        try dump {
            let message = MessageBuilder(type: UAPI.rtmGetNeigh, flags: 0, operation: "list bridge fdb")
            message.putFixedHeader(FixedHeader.nd(family: UAPI.afBridge, index: 0, state: 0, flags: 0, type: 0))
            return message
        }.compactMap(FDBEntry.init).filter { index == nil || $0.index == index }
    }

    private func sendFDB(_ entry: FDBEntry, type: UInt16, flags: Int32, verb: String) throws(NetlinkError) {
        var operation = "\(verb) fdb \(entry.mac) on link \(entry.index)"
        if let destination = entry.destination { operation += " dst \(destination)" }
        let message = MessageBuilder(type: type, flags: flags, operation: operation)
        message.putFixedHeader(
            FixedHeader.nd(
                family: UAPI.afBridge, index: entry.index, state: entry.state.rawValue, flags: entry.flags.rawValue,
                type: 0))
        message.put(attr(NDA_LLADDR), entry.mac.bytes)
        if let destination = entry.destination { message.put(attr(NDA_DST), destination.bytes) }
        if let vlan = entry.vlan { message.put(attr(NDA_VLAN), u16: vlan) }
        if let port = entry.port { message.put(attr(NDA_PORT), be16: port) }
        if let vni = entry.vni { message.put(attr(NDA_VNI), u32: vni) }
        try execute(message)
    }
}
