import CPierShim
import IPAddressing

#if canImport(Glibc)
    import Glibc
#endif

public enum RouteScope: UInt8, Sendable {
    case universe = 0
    case site = 200
    case link = 253
    case host = 254
    case nowhere = 255
}

/// A route to add, replace or delete, and what a route dump returns.
public struct Route: Sendable, Equatable {
    /// Destination; a zero-length prefix is the default route.
    public var destination: IPPrefix
    public var gateway: IPAddress?
    public var outputIndex: Int32?
    /// Preferred source address (RTA_PREFSRC).
    public var source: IPAddress?
    /// Routing table id; 254 is `main`.
    public var table: UInt32
    /// nil: link scope for a direct IPv4 route through a device, universe otherwise (as `ip`).
    public var scope: RouteScope?
    /// Metric (RTA_PRIORITY).
    public var metric: UInt32?
    /// Use the gateway even if no address on the device covers it.
    public var onLink: Bool
    /// Path MTU for this route (RTAX_MTU).
    public var mtu: UInt32?
    /// RTPROT_*: who installed it; 3 (boot) is what `ip route add` uses.
    public var `protocol`: UInt8
    /// RTN_*: 1 is unicast.
    public var type: UInt8

    public static let mainTable: UInt32 = 254

    public init(
        destination: IPPrefix, gateway: IPAddress? = nil, outputIndex: Int32? = nil, source: IPAddress? = nil,
        table: UInt32 = Route.mainTable, scope: RouteScope? = nil, metric: UInt32? = nil, onLink: Bool = false,
        mtu: UInt32? = nil
    ) {
        self.destination = destination
        self.gateway = gateway
        self.outputIndex = outputIndex
        self.source = source
        self.table = table
        self.scope = scope
        self.metric = metric
        self.onLink = onLink
        self.mtu = mtu
        self.protocol = UInt8(RTPROT_BOOT)
        self.type = UInt8(RTN_UNICAST)
    }

    /// The default route (0.0.0.0/0 or ::/0) via `gateway`.
    public static func defaultRoute(
        via gateway: IPAddress, outputIndex: Int32? = nil, table: UInt32 = Route.mainTable, metric: UInt32? = nil
    ) -> Route {
        Route(
            destination: anyPrefix(gateway.family), gateway: gateway, outputIndex: outputIndex, table: table,
            metric: metric)
    }

    /// 0.0.0.0/0 or ::/0.
    public static func anyPrefix(_ family: IPFamily) -> IPPrefix {
        guard let zero = IPAddress(bytes: [UInt8](repeating: 0, count: family.byteCount)),
            let prefix = IPPrefix(address: zero, length: 0)
        else { preconditionFailure("a zero-length prefix of the zero address is always valid") }
        return prefix
    }

    public var family: IPFamily { destination.family }
    public var isDefault: Bool { destination.length == 0 }

    var effectiveScope: RouteScope {
        if let scope { return scope }
        return gateway == nil && outputIndex != nil && family == .v4 ? .link : .universe
    }

    init?(_ message: NetlinkMessage) {
        guard message.type == UAPI.rtmNewRoute, message.payload.count >= 12 else { return nil }
        let payload = message.payload
        let attributes = Attributes(payload, from: 12)
        let family: IPFamily = payload[0] == UAPI.afInet6 ? .v6 : .v4
        guard payload[0] == UAPI.afInet || payload[0] == UAPI.afInet6 else { return nil }
        let zero = IPAddress(bytes: [UInt8](repeating: 0, count: family.byteCount))
        guard let address = attributes.ip(attr(RTA_DST.rawValue)) ?? zero,
            let destination = IPPrefix(address: address, length: Int(payload[1]))
        else { return nil }
        self.destination = destination
        gateway = attributes.ip(attr(RTA_GATEWAY.rawValue))
        outputIndex = attributes.i32(attr(RTA_OIF.rawValue))
        source = attributes.ip(attr(RTA_PREFSRC.rawValue))
        table = attributes.u32(attr(RTA_TABLE.rawValue)) ?? UInt32(payload[4])
        scope = RouteScope(rawValue: payload[6])
        metric = attributes.u32(attr(RTA_PRIORITY.rawValue))
        onLink = readU32(payload, 8) & UInt32(RTNH_F_ONLINK) != 0
        mtu = attributes.nested(attr(RTA_METRICS.rawValue))?.u32(attr(RTAX_MTU))
        self.protocol = payload[5]
        type = payload[7]
    }
}

extension RouteNetlink {
    /// Adds a route; fails with EEXIST (`isExists`) if the same one is there.
    public func addRoute(_ route: Route) throws(NetlinkError) {
        try sendRoute(route, type: UAPI.rtmNewRoute, flags: UAPI.create, verb: "add")
    }

    /// Adds the route or replaces the one with the same destination, table and metric.
    public func replaceRoute(_ route: Route) throws(NetlinkError) {
        try sendRoute(route, type: UAPI.rtmNewRoute, flags: UAPI.replace, verb: "replace")
    }

    public func deleteRoute(_ route: Route) throws(NetlinkError) {
        try sendRoute(route, type: UAPI.rtmDelRoute, flags: 0, verb: "delete")
    }

    /// Routes of one family in `table` (all tables when nil), kernel-made ones included.
    public func routes(family: IPFamily, table: UInt32? = Route.mainTable) throws(NetlinkError) -> [Route] {
        try dump {
            let message = MessageBuilder(type: UAPI.rtmGetRoute, flags: 0, operation: "list \(family) routes")
            message.putFixedHeader(
                FixedHeader.rt(
                    family: family.addressFamily, destinationLength: 0, table: 0, protocol: 0, scope: 0, type: 0,
                    flags: 0))
            return message
        }.compactMap(Route.init).filter { table == nil || $0.table == table }
    }

    private func sendRoute(_ route: Route, type: UInt16, flags: Int32, verb: String) throws(NetlinkError) {
        var operation = "\(verb) route \(route.destination)"
        if let gateway = route.gateway { operation += " via \(gateway)" }
        if let index = route.outputIndex { operation += " dev \(index)" }
        if route.table != Route.mainTable { operation += " table \(route.table)" }
        for other in [route.gateway, route.source].compactMap({ $0 }) where other.family != route.family {
            throw NetlinkError(
                .invalidArgument, operation: operation, errno: EINVAL,
                detail: "\(other) is not of the destination's address family")
        }
        let message = MessageBuilder(type: type, flags: flags, operation: operation)
        // Tables above 255 only fit in RTA_TABLE; rtm_table then says RT_TABLE_UNSPEC.
        message.putFixedHeader(
            FixedHeader.rt(
                family: route.family.addressFamily, destinationLength: UInt8(route.destination.length),
                table: route.table < 256 ? UInt8(route.table) : 0, protocol: route.protocol,
                scope: route.effectiveScope.rawValue, type: route.type,
                flags: route.onLink ? UInt32(RTNH_F_ONLINK) : 0))
        message.put(attr(RTA_TABLE.rawValue), u32: route.table)
        if route.destination.length > 0 {
            message.put(attr(RTA_DST.rawValue), route.destination.address.bytes)
        }
        if let gateway = route.gateway { message.put(attr(RTA_GATEWAY.rawValue), gateway.bytes) }
        if let index = route.outputIndex { message.put(attr(RTA_OIF.rawValue), u32: UInt32(bitPattern: index)) }
        if let source = route.source { message.put(attr(RTA_PREFSRC.rawValue), source.bytes) }
        if let metric = route.metric { message.put(attr(RTA_PRIORITY.rawValue), u32: metric) }
        if let mtu = route.mtu {
            message.nest(attr(RTA_METRICS.rawValue)) { message.put(attr(RTAX_MTU), u32: mtu) }
        }
        try execute(message)
    }
}
