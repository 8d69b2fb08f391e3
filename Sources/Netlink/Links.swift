import CPierShim
import IPAddressing
import NetNS

#if canImport(Glibc)
    import Glibc
#endif

/// The `IFLA_INFO_KIND` of a link ("bridge", "veth", ...); open-ended because the kernel has
/// many more kinds than Pier creates.
public struct LinkKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let bridge = LinkKind(rawValue: "bridge")
    public static let veth = LinkKind(rawValue: "veth")
    public static let macvlan = LinkKind(rawValue: "macvlan")
    public static let vxlan = LinkKind(rawValue: "vxlan")
    public static let dummy = LinkKind(rawValue: "dummy")
}

/// RFC 2863 operational state (IFLA_OPERSTATE).
public enum OperationalState: UInt8, Sendable {
    case unknown = 0
    case notPresent = 1
    case down = 2
    case lowerLayerDown = 3
    case testing = 4
    case dormant = 5
    case up = 6
}

public enum MacvlanMode: UInt32, Sendable, CaseIterable {
    case `private` = 1
    case vepa = 2
    case bridge = 4
    case passthru = 8
    case source = 16
}

/// Where a link should live: a namespace file descriptor (preferred: immune to pid reuse) or
/// a process id. The descriptor must stay open until the request has been sent.
public enum NamespaceReference: Sendable, Equatable {
    case fileDescriptor(Int32)
    case pid(Int32)

    public static func namespace(_ namespace: NetworkNamespace) -> NamespaceReference {
        .fileDescriptor(namespace.fileDescriptor)
    }

    func put(into message: MessageBuilder) {
        switch self {
        case .fileDescriptor(let fd): message.put(attr(IFLA_NET_NS_FD), u32: UInt32(bitPattern: fd))
        case .pid(let pid): message.put(attr(IFLA_NET_NS_PID), u32: UInt32(bitPattern: pid))
        }
    }
}

/// VXLAN settings as the kernel reports them.
public struct VxlanInfo: Sendable, Equatable {
    public var vni: UInt32?
    public var local: IPAddress?
    public var port: UInt16?
    public var underlayIndex: Int32?
    public var learning: Bool?
    public var proxy: Bool?
}

/// Bridge port options of a link enslaved to a bridge.
public struct BridgePortInfo: Sendable, Equatable {
    public var hairpin: Bool?
    public var isolated: Bool?
}

/// Per-interface IPv4 settings that netlink can set (`IPV4_DEVCONF_*`, linux/ip.h).
public enum IPv4DeviceConfig: Int32, Sendable, CustomStringConvertible {
    case forwarding = 1  // IPV4_DEVCONF_FORWARDING
    case arpNotify = 22  // IPV4_DEVCONF_ARP_NOTIFY
    case routeLocalnet = 26  // IPV4_DEVCONF_ROUTE_LOCALNET

    public var description: String {
        switch self {
        case .forwarding: "forwarding"
        case .arpNotify: "arp_notify"
        case .routeLocalnet: "route_localnet"
        }
    }
}

/// A network interface as RTM_NEWLINK describes it.
public struct Link: Sendable, Equatable {
    public var index: Int32
    public var name: String
    public var kind: LinkKind?
    public var mac: MACAddress?
    public var mtu: UInt32?
    /// IFF_* flags.
    public var flags: UInt32
    public var operationalState: OperationalState?
    /// The bridge (or other master) this link is enslaved to.
    public var masterIndex: Int32?
    /// IFLA_LINK: a veth's peer index, a macvlan's parent; in the namespace `linkNetnsID`
    /// names when that is present.
    public var linkIndex: Int32?
    public var linkNetnsID: Int32?
    public var alias: String?
    public var slaveKind: LinkKind?
    public var vxlan: VxlanInfo?
    public var macvlanMode: MacvlanMode?
    public var bridgePort: BridgePortInfo?
    /// STP state of a bridge port (BR_STATE_*: 0 disabled, 1 listening, 2 learning,
    /// 3 forwarding, 4 blocking); only forwarding ports pass traffic. Diagnostics read it.
    public var bridgePortState: UInt8?
    /// IFLA_INET6_CONF: the IPv6 sysctls of this link, indexed by DEVCONF_* (`ipv6Setting`).
    public var ipv6DeviceConfig: [Int32]?
    /// IFLA_INET_CONF: the IPv4 sysctls of this link, IPV4_DEVCONF_* n at n - 1 (`ipv4Setting`).
    public var ipv4DeviceConfig: [UInt32]?
    /// IFLA_INET6_ADDR_GEN_MODE: how the kernel makes this link's IPv6 link-local address.
    public var ipv6AddressGeneration: IPv6AddressGeneration?

    public var isUp: Bool { flags & UAPI.iffUp != 0 }
    public var hasCarrier: Bool { flags & UAPI.iffLowerUp != 0 }
    public var isPromiscuous: Bool { flags & UAPI.iffPromisc != 0 }

    init?(_ message: NetlinkMessage) {
        guard message.type == UAPI.rtmNewLink, message.payload.count >= 16 else { return nil }
        let payload = message.payload
        let attributes = Attributes(payload, from: 16)
        index = readI32(payload, 4)
        flags = readU32(payload, 8)
        name = attributes.string(attr(IFLA_IFNAME)) ?? ""
        mac = attributes.mac(attr(IFLA_ADDRESS))
        mtu = attributes.u32(attr(IFLA_MTU))
        operationalState = attributes.u8(attr(IFLA_OPERSTATE)).flatMap { OperationalState(rawValue: $0) }
        masterIndex = attributes.i32(attr(IFLA_MASTER)).flatMap { $0 == 0 ? nil : $0 }
        linkIndex = attributes.i32(attr(IFLA_LINK))
        linkNetnsID = attributes.i32(attr(IFLA_LINK_NETNSID))
        alias = attributes.string(attr(IFLA_IFALIAS))
        if let families = attributes.nested(attr(IFLA_AF_SPEC)) {
            if let conf = families.nested(UInt16(AF_INET))?[attr(IFLA_INET_CONF)] {
                ipv4DeviceConfig = stride(from: 0, to: conf.count - 3, by: 4).map { readU32(conf, $0) }
            }
            if let inet6 = families.nested(UInt16(AF_INET6)) {
                if let conf = inet6[attr(IFLA_INET6_CONF)] {
                    ipv6DeviceConfig = stride(from: 0, to: conf.count - 3, by: 4).map { readI32(conf, $0) }
                }
                ipv6AddressGeneration = inet6.u8(attr(IFLA_INET6_ADDR_GEN_MODE)).flatMap {
                    IPv6AddressGeneration(rawValue: $0)
                }
            }
        }
        if let info = attributes.nested(attr(IFLA_LINKINFO)) {
            kind = info.string(attr(IFLA_INFO_KIND)).map { LinkKind(rawValue: $0) }
            slaveKind = info.string(attr(IFLA_INFO_SLAVE_KIND)).map { LinkKind(rawValue: $0) }
            if let data = info.nested(attr(IFLA_INFO_DATA)) {
                if kind == .vxlan {
                    vxlan = VxlanInfo(
                        vni: data.u32(attr(IFLA_VXLAN_ID)),
                        local: data.ip(attr(IFLA_VXLAN_LOCAL)) ?? data.ip(attr(IFLA_VXLAN_LOCAL6)),
                        port: data.be16(attr(IFLA_VXLAN_PORT)),
                        underlayIndex: data.i32(attr(IFLA_VXLAN_LINK)),
                        learning: data.u8(attr(IFLA_VXLAN_LEARNING)).map { $0 != 0 },
                        proxy: data.u8(attr(IFLA_VXLAN_PROXY)).map { $0 != 0 })
                } else if kind == .macvlan {
                    macvlanMode = data.u32(attr(IFLA_MACVLAN_MODE)).flatMap { MacvlanMode(rawValue: $0) }
                }
            }
            if slaveKind == .bridge, let data = info.nested(attr(IFLA_INFO_SLAVE_DATA)) {
                bridgePort = BridgePortInfo(
                    hairpin: data.u8(attr(IFLA_BRPORT_MODE)).map { $0 != 0 },
                    isolated: data.u8(attr(IFLA_BRPORT_ISOLATED)).map { $0 != 0 })
                bridgePortState = data.u8(attr(IFLA_BRPORT_STATE))
            }
        }
    }
}

/// A veth pair to create: `name` stays in the socket's namespace, `peerName` is born in
/// `peerNamespace` (or beside it when nil), so it never appears where it would collide.
public struct VethPair: Sendable {
    public var name: String
    public var peerName: String
    public var peerNamespace: NamespaceReference?
    public var mtu: UInt32?
    public var mac: MACAddress?
    public var peerMAC: MACAddress?
    public var masterIndex: Int32?

    public init(
        name: String, peerName: String, peerNamespace: NamespaceReference? = nil, mtu: UInt32? = nil,
        mac: MACAddress? = nil, peerMAC: MACAddress? = nil, masterIndex: Int32? = nil
    ) {
        self.name = name
        self.peerName = peerName
        self.peerNamespace = peerNamespace
        self.mtu = mtu
        self.mac = mac
        self.peerMAC = peerMAC
        self.masterIndex = masterIndex
    }
}

/// A VXLAN device as the overlay uses it: static FDB, so learning off and ARP proxy on.
public struct VxlanDevice: Sendable {
    public var name: String
    public var vni: UInt32
    public var local: IPAddress?
    public var port: UInt16
    public var underlayIndex: Int32?
    public var learning: Bool
    public var proxy: Bool
    public var mtu: UInt32?
    public var mac: MACAddress?
    public var namespace: NamespaceReference?

    public init(
        name: String, vni: UInt32, local: IPAddress? = nil, port: UInt16 = 4789, underlayIndex: Int32? = nil,
        learning: Bool = false, proxy: Bool = true, mtu: UInt32? = nil, mac: MACAddress? = nil,
        namespace: NamespaceReference? = nil
    ) {
        self.name = name
        self.vni = vni
        self.local = local
        self.port = port
        self.underlayIndex = underlayIndex
        self.learning = learning
        self.proxy = proxy
        self.mtu = mtu
        self.mac = mac
        self.namespace = namespace
    }
}

/// The kernel's rule (`InterfaceName`), checked here so a bad name fails with a clear message
/// before anything is sent.
func validateInterfaceName(_ name: String, operation: String) throws(NetlinkError) {
    guard InterfaceName.isValid(name) else {
        throw NetlinkError(
            .invalidArgument, operation: operation, errno: EINVAL,
            detail: "invalid interface name \"\(name)\" (1-15 bytes, no '/', ':' or whitespace)")
    }
}

extension RouteNetlink {
    // MARK: Creating links

    public func createBridge(name: String, mtu: UInt32? = nil, mac: MACAddress? = nil) throws(NetlinkError) {
        let operation = "create bridge \(name)"
        try validateInterfaceName(name, operation: operation)
        let message = newLinkMessage(flags: UAPI.create, operation: operation)
        putCommon(message, name: name, mtu: mtu, mac: mac)
        message.nest(attr(IFLA_LINKINFO)) {
            message.put(attr(IFLA_INFO_KIND), string: LinkKind.bridge.rawValue)
        }
        try execute(message)
    }

    /// Creates a veth pair; the peer is created directly in `peerNamespace` (the kernel moves
    /// it there atomically), which is how a container's interface never shows up on the host.
    public func createVeth(_ pair: VethPair) throws(NetlinkError) {
        let operation = "create veth \(pair.name)/\(pair.peerName)"
        try validateInterfaceName(pair.name, operation: operation)
        try validateInterfaceName(pair.peerName, operation: operation)
        let message = newLinkMessage(flags: UAPI.create, operation: operation)
        putCommon(message, name: pair.name, mtu: pair.mtu, mac: pair.mac)
        if let master = pair.masterIndex { message.put(attr(IFLA_MASTER), u32: UInt32(bitPattern: master)) }
        message.nest(attr(IFLA_LINKINFO)) {
            message.put(attr(IFLA_INFO_KIND), string: LinkKind.veth.rawValue)
            message.nest(attr(IFLA_INFO_DATA)) {
                // The peer's payload is a whole ifinfomsg followed by its attributes.
                message.nest(attr(VETH_INFO_PEER)) {
                    message.putFixedHeader(FixedHeader.ifinfo())
                    putCommon(message, name: pair.peerName, mtu: pair.mtu, mac: pair.peerMAC)
                    pair.peerNamespace?.put(into: message)
                }
            }
        }
        try execute(message)
    }

    /// Creates a macvlan child of `parentIndex` (an index in this socket's namespace), optionally
    /// straight into `namespace`, where the kernel registers it: only a name collision there
    /// fails the request. `broadcastQueueLength` sizes the queue the parent uses to hand
    /// broadcasts to its children (IFLA_MACVLAN_BC_QUEUE_LEN, Linux 5.11+); nil keeps the
    /// kernel's default.
    public func createMacvlan(
        name: String, parentIndex: Int32, mode: MacvlanMode = .bridge, mtu: UInt32? = nil, mac: MACAddress? = nil,
        namespace: NamespaceReference? = nil, broadcastQueueLength: UInt32? = nil
    ) throws(NetlinkError) {
        let operation = "create macvlan \(name) on link \(parentIndex)"
        try validateInterfaceName(name, operation: operation)
        let message = newLinkMessage(flags: UAPI.create, operation: operation)
        putCommon(message, name: name, mtu: mtu, mac: mac)
        message.put(attr(IFLA_LINK), u32: UInt32(bitPattern: parentIndex))
        namespace?.put(into: message)
        message.nest(attr(IFLA_LINKINFO)) {
            message.put(attr(IFLA_INFO_KIND), string: LinkKind.macvlan.rawValue)
            message.nest(attr(IFLA_INFO_DATA)) {
                message.put(attr(IFLA_MACVLAN_MODE), u32: mode.rawValue)
                if let broadcastQueueLength {
                    message.put(attr(IFLA_MACVLAN_BC_QUEUE_LEN), u32: broadcastQueueLength)
                }
            }
        }
        try execute(message)
    }

    public func createVxlan(_ device: VxlanDevice) throws(NetlinkError) {
        let operation = "create vxlan \(device.name) (VNI \(device.vni))"
        try validateInterfaceName(device.name, operation: operation)
        guard device.vni < (1 << 24) else {
            throw NetlinkError(
                .invalidArgument, operation: operation, errno: EINVAL, detail: "VNI must be below 2^24")
        }
        let message = newLinkMessage(flags: UAPI.create, operation: operation)
        putCommon(message, name: device.name, mtu: device.mtu, mac: device.mac)
        device.namespace?.put(into: message)
        message.nest(attr(IFLA_LINKINFO)) {
            message.put(attr(IFLA_INFO_KIND), string: LinkKind.vxlan.rawValue)
            message.nest(attr(IFLA_INFO_DATA)) {
                message.put(attr(IFLA_VXLAN_ID), u32: device.vni)
                if let local = device.local {
                    let type = local.family == .v4 ? attr(IFLA_VXLAN_LOCAL) : attr(IFLA_VXLAN_LOCAL6)
                    message.put(type, local.bytes)
                }
                if let underlay = device.underlayIndex {
                    message.put(attr(IFLA_VXLAN_LINK), u32: UInt32(bitPattern: underlay))
                }
                message.put(attr(IFLA_VXLAN_PORT), be16: device.port)
                message.put(attr(IFLA_VXLAN_LEARNING), u8: device.learning ? 1 : 0)
                message.put(attr(IFLA_VXLAN_PROXY), u8: device.proxy ? 1 : 0)
            }
        }
        try execute(message)
    }

    /// A dummy link (not available on every kernel: the driver may be missing).
    public func createDummy(name: String, mtu: UInt32? = nil, mac: MACAddress? = nil) throws(NetlinkError) {
        let operation = "create dummy \(name)"
        try validateInterfaceName(name, operation: operation)
        let message = newLinkMessage(flags: UAPI.create, operation: operation)
        putCommon(message, name: name, mtu: mtu, mac: mac)
        message.nest(attr(IFLA_LINKINFO)) {
            message.put(attr(IFLA_INFO_KIND), string: LinkKind.dummy.rawValue)
        }
        try execute(message)
    }

    // MARK: Reading links

    // Gets and dumps ask the kernel to skip interface statistics (RTEXT_FILTER_SKIP_STATS):
    // they are most of every RTM_NEWLINK and Pier never reads them.

    public func link(named name: String) throws(NetlinkError) -> Link {
        let operation = "get link \(name)"
        try validateInterfaceName(name, operation: operation)
        let message = MessageBuilder(type: UAPI.rtmGetLink, flags: 0, operation: operation)
        message.putFixedHeader(FixedHeader.ifinfo())
        message.put(attr(IFLA_IFNAME), string: name)
        message.put(attr(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
        return try singleLink(try execute(message), operation: operation)
    }

    public func link(index: Int32) throws(NetlinkError) -> Link {
        let operation = "get link \(index)"
        let message = MessageBuilder(type: UAPI.rtmGetLink, flags: 0, operation: operation)
        message.putFixedHeader(FixedHeader.ifinfo(index: index))
        message.put(attr(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
        return try singleLink(try execute(message), operation: operation)
    }

    /// Every link in the socket's namespace.
    public func links() throws(NetlinkError) -> [Link] {
        try dump {
            let message = MessageBuilder(type: UAPI.rtmGetLink, flags: 0, operation: "list links")
            message.putFixedHeader(FixedHeader.ifinfo())
            message.put(attr(IFLA_EXT_MASK), u32: UInt32(RTEXT_FILTER_SKIP_STATS))
            return message
        }.compactMap(Link.init)
    }

    private func singleLink(_ messages: [NetlinkMessage], operation: String) throws(NetlinkError) -> Link {
        guard let link = messages.lazy.compactMap(Link.init).first else {
            throw NetlinkError(
                .protocolViolation, operation: operation, errno: EPROTO, detail: "no link in the kernel's reply")
        }
        return link
    }

    // MARK: Changing links

    public func setLinkUp(index: Int32) throws(NetlinkError) {
        try changeLink(index: index, operation: "set link \(index) up", flags: UAPI.iffUp, change: UAPI.iffUp)
    }

    public func setLinkDown(index: Int32) throws(NetlinkError) {
        try changeLink(index: index, operation: "set link \(index) down", flags: 0, change: UAPI.iffUp)
    }

    public func setPromiscuous(index: Int32, _ on: Bool) throws(NetlinkError) {
        try changeLink(
            index: index, operation: "set link \(index) promisc \(on ? "on" : "off")",
            flags: on ? UAPI.iffPromisc : 0, change: UAPI.iffPromisc)
    }

    public func setMTU(index: Int32, _ mtu: UInt32) throws(NetlinkError) {
        try changeLink(index: index, operation: "set link \(index) mtu \(mtu)") { message in
            message.put(attr(IFLA_MTU), u32: mtu)
        }
    }

    public func setMAC(index: Int32, _ mac: MACAddress) throws(NetlinkError) {
        try changeLink(index: index, operation: "set link \(index) address \(mac)") { message in
            message.put(attr(IFLA_ADDRESS), mac.bytes)
        }
    }

    /// Renames a link; the kernel refuses while it is up (EBUSY).
    public func rename(index: Int32, to name: String) throws(NetlinkError) {
        let operation = "rename link \(index) to \(name)"
        try validateInterfaceName(name, operation: operation)
        try changeLink(index: index, operation: operation) { message in
            message.put(attr(IFLA_IFNAME), string: name)
        }
    }

    /// Enslaves the link to `masterIndex` (a bridge), or releases it when nil ("nomaster").
    public func setMaster(index: Int32, _ masterIndex: Int32?) throws(NetlinkError) {
        let what = masterIndex.map { "master \($0)" } ?? "nomaster"
        try changeLink(index: index, operation: "set link \(index) \(what)") { message in
            message.put(attr(IFLA_MASTER), u32: UInt32(bitPattern: masterIndex ?? 0))
        }
    }

    /// Moves a link into another namespace; it keeps its name there unless that is taken.
    public func moveLink(index: Int32, to namespace: NamespaceReference) throws(NetlinkError) {
        try changeLink(index: index, operation: "move link \(index) to another network namespace") { message in
            namespace.put(into: message)
        }
    }

    public func setAlias(index: Int32, _ alias: String) throws(NetlinkError) {
        try changeLink(index: index, operation: "set link \(index) alias \(alias)") { message in
            message.put(attr(IFLA_IFALIAS), string: alias)
        }
    }

    /// Sets per-interface IPv4 settings (the `net/ipv4/conf/<dev>/*` sysctls) over netlink:
    /// IFLA_AF_SPEC > AF_INET > IFLA_INET_CONF > one u32 per IPV4_DEVCONF_* index. Cheaper than
    /// /proc/sys, whose path lookup compares against the same names in every other network
    /// namespace of the host, so it slows down with every container.
    public func setIPv4DeviceConfig(index: Int32, _ values: [IPv4DeviceConfig: UInt32]) throws(NetlinkError) {
        let settings = values.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        try changeLink(index: index, operation: "set link \(index) ipv4 \(settings)") { message in
            message.nest(attr(IFLA_AF_SPEC)) {
                message.nest(UInt16(AF_INET)) {
                    message.nest(attr(IFLA_INET_CONF)) {
                        for (key, value) in values.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                            message.put(UInt16(key.rawValue), u32: value)
                        }
                    }
                }
            }
        }
    }

    /// Sets how the kernel makes the link's IPv6 addresses (IFLA_AF_SPEC > AF_INET6 >
    /// IFLA_INET6_ADDR_GEN_MODE). The kernel refuses it on a link without IPv6 (EAFNOSUPPORT).
    public func setIPv6AddressGeneration(index: Int32, _ mode: IPv6AddressGeneration) throws(NetlinkError) {
        try changeLink(index: index, operation: "set link \(index) addrgenmode \(mode)") { message in
            message.nest(attr(IFLA_AF_SPEC)) {
                message.nest(UInt16(AF_INET6)) {
                    message.put(attr(IFLA_INET6_ADDR_GEN_MODE), u8: mode.rawValue)
                }
            }
        }
    }

    public func deleteLink(index: Int32) throws(NetlinkError) {
        let message = MessageBuilder(type: UAPI.rtmDelLink, flags: 0, operation: "delete link \(index)")
        message.putFixedHeader(FixedHeader.ifinfo(index: index))
        try execute(message)
    }

    public func deleteLink(named name: String) throws(NetlinkError) {
        let operation = "delete link \(name)"
        try validateInterfaceName(name, operation: operation)
        let message = MessageBuilder(type: UAPI.rtmDelLink, flags: 0, operation: operation)
        message.putFixedHeader(FixedHeader.ifinfo())
        message.put(attr(IFLA_IFNAME), string: name)
        try execute(message)
    }

    // MARK: Helpers

    private func newLinkMessage(flags: Int32, operation: String) -> MessageBuilder {
        let message = MessageBuilder(type: UAPI.rtmNewLink, flags: flags, operation: operation)
        message.putFixedHeader(FixedHeader.ifinfo())
        return message
    }

    private func putCommon(_ message: MessageBuilder, name: String, mtu: UInt32?, mac: MACAddress?) {
        message.put(attr(IFLA_IFNAME), string: name)
        if let mtu { message.put(attr(IFLA_MTU), u32: mtu) }
        if let mac { message.put(attr(IFLA_ADDRESS), mac.bytes) }
    }

    /// RTM_NEWLINK without NLM_F_CREATE on an existing index: the kernel changes only what
    /// the message carries (the flags selected by `change`, and the attributes).
    func changeLink(
        index: Int32, operation: String, flags: UInt32 = 0, change: UInt32 = 0,
        _ body: (MessageBuilder) -> Void = { _ in }
    ) throws(NetlinkError) {
        let message = MessageBuilder(type: UAPI.rtmNewLink, flags: 0, operation: operation)
        message.putFixedHeader(FixedHeader.ifinfo(index: index, flags: flags, change: change))
        body(message)
        try execute(message)
    }
}
