import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

// Traffic control over rtnetlink: the token bucket (TBF) qdisc, the ingress qdisc, a u32
// match-all filter that redirects to another device, and IFB links. What `tc` sends, without
// running `tc`. linux/pkt_sched.h, pkt_cls.h and tc_act/tc_mirred.h are not among the
// headers CPierShim imports, so their few numbers are spelled out here with their uapi names.

/// uapi numbers for traffic control that Swift does not import.
enum TrafficControlUAPI {
    static let rtmNewQdisc = UInt16(RTM_NEWQDISC)
    static let rtmDelQdisc = UInt16(RTM_DELQDISC)
    static let rtmGetQdisc = UInt16(RTM_GETQDISC)
    static let rtmNewFilter = UInt16(RTM_NEWTFILTER)
    static let rtmGetFilter = UInt16(RTM_GETTFILTER)

    static let kind = attr(TCA_KIND)
    static let options = attr(TCA_OPTIONS)

    // linux/pkt_sched.h
    static let tbfParameters: UInt16 = 1  // TCA_TBF_PARMS
    static let tbfRate64: UInt16 = 4  // TCA_TBF_RATE64
    static let tbfBurst: UInt16 = 6  // TCA_TBF_BURST
    static let linkLayerEthernet: UInt8 = 1  // TC_LINKLAYER_ETHERNET

    // linux/pkt_cls.h
    static let u32Selector: UInt16 = 5  // TCA_U32_SEL
    static let u32Actions: UInt16 = 7  // TCA_U32_ACT
    static let u32Terminal: UInt8 = 1  // TC_U32_TERMINAL
    static let actionKind: UInt16 = 1  // TCA_ACT_KIND
    static let actionOptions: UInt16 = 2  // TCA_ACT_OPTIONS
    static let actionStolen: Int32 = 4  // TC_ACT_STOLEN

    // linux/tc_act/tc_mirred.h
    static let mirredParameters: UInt16 = 2  // TCA_MIRRED_PARMS
    static let egressRedirect: Int32 = 1  // TCA_EGRESS_REDIR

    /// htons(ETH_P_ALL), as a filter's protocol travels in tcm_info.
    static let allProtocols = UInt16(ETH_P_ALL).bigEndian

    /// struct tcmsg: family, pad1, pad2 u16, ifindex i32, handle u32, parent u32, info u32.
    static func header(index: Int32, handle: UInt32 = 0, parent: UInt32 = 0, info: UInt32 = 0) -> [UInt8] {
        [UInt8(AF_UNSPEC), 0] + hostBytes(UInt16(0)) + hostBytes(index) + hostBytes(handle) + hostBytes(parent)
            + hostBytes(info)
    }
    static let headerLength = 20
}

/// Where a qdisc hangs (tcm_parent) and the handles Pier gives its qdiscs.
public enum QdiscHandle {
    /// TC_H_ROOT: the device's egress root.
    public static let root: UInt32 = 0xffff_ffff
    /// TC_H_INGRESS: the parent of the ingress qdisc.
    public static let ingressParent: UInt32 = 0xffff_fff1
    /// `ffff:`, the handle the ingress qdisc always has; filters on it name it as parent.
    public static let ingress: UInt32 = 0xffff_0000
    /// `1:`, the handle `tc` and the reference plugin give a root TBF.
    public static let tokenBucketRoot: UInt32 = 0x0001_0000
}

extension LinkKind {
    /// Intermediate functional block: a device whose egress queue can shape what another
    /// device received (its ingress cannot hold a shaping qdisc).
    public static let ifb = LinkKind(rawValue: "ifb")
}

/// A token bucket filter's settings in the units the kernel keeps: bytes per second, bytes.
public struct TokenBucket: Sendable, Equatable, CustomStringConvertible {
    /// Bytes per second.
    public var rate: UInt64
    /// Bucket size in bytes: what may leave at line rate after an idle period.
    public var burst: UInt32
    /// Bytes that may wait in the queue before packets are dropped.
    public var limit: UInt32

    public init(rate: UInt64, burst: UInt32, limit: UInt32) {
        self.rate = rate
        self.burst = burst
        self.limit = limit
    }

    /// The kernel's packet scheduler clock: one tick is 64 ns (PSCHED_SHIFT 6, which is what
    /// /proc/net/psched's second field reports and has been fixed since Linux 2.6.24).
    public static let nanosecondsPerTick: UInt64 = 64

    /// `buffer` of struct tc_tbf_qopt: the time sending `burst` bytes takes at `rate`, in
    /// scheduler ticks, as `tc` computes it.
    public var bufferTicks: UInt32 {
        guard rate > 0 else { return 0 }
        let nanoseconds = UInt64(burst).multipliedReportingOverflow(by: 1_000_000_000)
        guard !nanoseconds.overflow else { return UInt32.max }
        return UInt32(clamping: nanoseconds.partialValue / rate / Self.nanosecondsPerTick)
    }

    /// The burst a kernel-reported buffer (in ticks) stands for at `rate`.
    static func burst(bufferTicks: UInt32, rate: UInt64) -> UInt32 {
        let seconds = Double(UInt64(bufferTicks) * nanosecondsPerTick) / 1e9
        let bytes = (seconds * Double(rate)).rounded()
        return bytes >= Double(UInt32.max) ? UInt32.max : UInt32(bytes)
    }

    public var description: String { "rate \(rate * 8)bit burst \(burst)b limit \(limit)b" }
}

/// The struct tcmsg every qdisc and filter message starts with, and the attributes after it.
struct TrafficControlHeader {
    var index: Int32
    var handle: UInt32
    var parent: UInt32
    var info: UInt32
    var kind: String
    var attributes: Attributes

    init?(_ message: NetlinkMessage, type: UInt16) {
        guard message.type == type, message.payload.count >= TrafficControlUAPI.headerLength else { return nil }
        let payload = message.payload
        index = readI32(payload, 4)
        handle = readU32(payload, 8)
        parent = readU32(payload, 12)
        info = readU32(payload, 16)
        attributes = Attributes(payload, from: TrafficControlUAPI.headerLength)
        kind = attributes.string(TrafficControlUAPI.kind) ?? ""
    }
}

/// A qdisc as RTM_NEWQDISC describes it.
public struct Qdisc: Sendable, Equatable {
    public var index: Int32
    public var handle: UInt32
    public var parent: UInt32
    public var kind: String
    /// Decoded for `tbf`; the burst is derived from the buffer the kernel keeps, so it may
    /// differ from the configured one by a byte or so of rounding.
    public var tokenBucket: TokenBucket?

    init?(_ message: NetlinkMessage) {
        guard let header = TrafficControlHeader(message, type: TrafficControlUAPI.rtmNewQdisc) else { return nil }
        (index, handle, parent, kind) = (header.index, header.handle, header.parent, header.kind)
        let attributes = header.attributes
        if kind == "tbf", let options = attributes.nested(TrafficControlUAPI.options),
            let parameters = options[TrafficControlUAPI.tbfParameters], parameters.count >= 36
        {
            // struct tc_tbf_qopt: rate (tc_ratespec, rate u32 at 8), peakrate, limit, buffer, mtu.
            var rate = UInt64(readU32(parameters, 8))
            if let rate64 = options[TrafficControlUAPI.tbfRate64], rate64.count >= 8 {
                rate = rate64.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            }
            let limit = readU32(parameters, 24)
            let buffer = readU32(parameters, 28)
            tokenBucket = TokenBucket(
                rate: rate, burst: TokenBucket.burst(bufferTicks: buffer, rate: rate), limit: limit)
        }
    }
}

/// A classifier attached to a qdisc, as RTM_NEWTFILTER describes it.
public struct TrafficFilter: Sendable, Equatable {
    public var index: Int32
    public var parent: UInt32
    public var handle: UInt32
    public var priority: UInt16
    /// Network byte order, as in tcm_info (htons(ETH_P_ALL) for every protocol).
    public var protocolNumber: UInt16
    public var kind: String
    /// The device a mirred action redirects to (egress redirect), when the filter has one.
    public var redirectIndex: Int32?

    init?(_ message: NetlinkMessage) {
        guard let header = TrafficControlHeader(message, type: TrafficControlUAPI.rtmNewFilter) else { return nil }
        (index, handle, parent, kind) = (header.index, header.handle, header.parent, header.kind)
        priority = UInt16(truncatingIfNeeded: header.info >> 16)
        protocolNumber = UInt16(truncatingIfNeeded: header.info)
        let attributes = header.attributes
        // u32: TCA_OPTIONS > TCA_U32_ACT > one nest per action, typed by its order (1 to
        // TCA_ACT_MAX_PRIO, 32) > kind + options.
        let actions = attributes.nested(TrafficControlUAPI.options)?.nested(TrafficControlUAPI.u32Actions)
        for order in UInt16(1)...32 {
            guard let fields = actions?.nested(order) else { continue }
            guard fields.string(TrafficControlUAPI.actionKind) == "mirred",
                let parameters = fields.nested(TrafficControlUAPI.actionOptions)?[TrafficControlUAPI.mirredParameters],
                parameters.count >= 28, readI32(parameters, 20) == TrafficControlUAPI.egressRedirect
            else { continue }
            // struct tc_mirred: tc_gen (5 x 32 bit), eaction, ifindex.
            redirectIndex = readI32(parameters, 24)
            break
        }
    }
}

extension RouteNetlink {
    // MARK: IFB links

    /// Creates an IFB link, up from the start (ifinfomsg flags on RTM_NEWLINK apply at creation).
    public func createIFB(name: String, mtu: UInt32? = nil) throws(NetlinkError) {
        let operation = "create ifb \(name)"
        try validateInterfaceName(name, operation: operation)
        let message = MessageBuilder(type: UAPI.rtmNewLink, flags: UAPI.create, operation: operation)
        message.putFixedHeader(FixedHeader.ifinfo(flags: UAPI.iffUp, change: UAPI.iffUp))
        message.put(attr(IFLA_IFNAME), string: name)
        if let mtu { message.put(attr(IFLA_MTU), u32: mtu) }
        message.nest(attr(IFLA_LINKINFO)) {
            message.put(attr(IFLA_INFO_KIND), string: LinkKind.ifb.rawValue)
        }
        try execute(message)
    }

    // MARK: Qdiscs

    /// Puts a TBF at the root of the device, replacing whatever root qdisc is there (`tc qdisc
    /// replace dev X root handle 1: tbf ...`). No rate table is sent: the kernel only reads one
    /// to guess the link layer when the rate spec says "unaware", and this one says ethernet.
    public func replaceRootTokenBucket(index: Int32, _ bucket: TokenBucket) throws(NetlinkError) {
        let operation = "set tbf \(bucket) on link \(index)"
        guard bucket.rate > 0, bucket.burst > 0 else {
            throw NetlinkError(
                .invalidArgument, operation: operation, errno: EINVAL, detail: "rate and burst must be positive")
        }
        let message = MessageBuilder(type: TrafficControlUAPI.rtmNewQdisc, flags: UAPI.replace, operation: operation)
        message.putFixedHeader(
            TrafficControlUAPI.header(index: index, handle: QdiscHandle.tokenBucketRoot, parent: QdiscHandle.root))
        message.put(TrafficControlUAPI.kind, string: "tbf")
        message.nest(TrafficControlUAPI.options) {
            // Rates of 2^32 bytes/s and more travel in TCA_TBF_RATE64, the 32-bit field saturated.
            let rate32 = UInt32(clamping: bucket.rate)
            let rateSpec =
                [0, TrafficControlUAPI.linkLayerEthernet] + hostBytes(UInt16(0)) + hostBytes(Int16(0))
                + hostBytes(UInt16(0)) + hostBytes(rate32)
            let peakRate = [UInt8](repeating: 0, count: 12)
            let parameters =
                rateSpec + peakRate + hostBytes(bucket.limit) + hostBytes(bucket.bufferTicks) + hostBytes(UInt32(0))
            message.put(TrafficControlUAPI.tbfParameters, parameters)
            if bucket.rate > UInt64(UInt32.max) { message.put(TrafficControlUAPI.tbfRate64, hostBytes(bucket.rate)) }
            // The burst in bytes too, so the kernel need not round-trip it through ticks.
            message.put(TrafficControlUAPI.tbfBurst, u32: bucket.burst)
        }
        try execute(message)
    }

    /// Adds the ingress qdisc (`ffff:`), which holds filters for what the device receives.
    public func addIngressQdisc(index: Int32) throws(NetlinkError) {
        let message = MessageBuilder(
            type: TrafficControlUAPI.rtmNewQdisc, flags: UAPI.create, operation: "add ingress qdisc to link \(index)")
        message.putFixedHeader(
            TrafficControlUAPI.header(index: index, handle: QdiscHandle.ingress, parent: QdiscHandle.ingressParent))
        message.put(TrafficControlUAPI.kind, string: "ingress")
        try execute(message)
    }

    /// Deletes the qdisc under `parent` (`QdiscHandle.root` or `.ingressParent`); the device
    /// falls back to its default. Deleting the ingress qdisc deletes its filters.
    public func deleteQdisc(index: Int32, parent: UInt32) throws(NetlinkError) {
        let what = parent == QdiscHandle.ingressParent ? "ingress" : "root"
        let message = MessageBuilder(
            type: TrafficControlUAPI.rtmDelQdisc, flags: 0, operation: "delete \(what) qdisc of link \(index)")
        message.putFixedHeader(TrafficControlUAPI.header(index: index, parent: parent))
        try execute(message)
    }

    /// The qdisc under `parent` (`QdiscHandle.root` or `.ingressParent`) of one link, nil when
    /// the link has no ingress queue. A get, not a dump: its cost does not grow with the number
    /// of links in the namespace. A link's defaults come back too (`noqueue`, or `noop` where an
    /// ingress qdisc was deleted). NLM_F_ECHO: recent kernels send the qdisc of a get only to a
    /// request that asks for the echo, and answer the rest with a bare ACK.
    public func qdisc(index: Int32, parent: UInt32) throws(NetlinkError) -> Qdisc? {
        let what = parent == QdiscHandle.ingressParent ? "ingress" : "root"
        let message = MessageBuilder(
            type: TrafficControlUAPI.rtmGetQdisc, flags: NLM_F_ECHO, operation: "get \(what) qdisc of link \(index)")
        message.putFixedHeader(TrafficControlUAPI.header(index: index, parent: parent))
        do {
            return try execute(message).lazy.compactMap(Qdisc.init).first
        } catch {
            if error.isNotFound { return nil }
            throw error
        }
    }

    /// The qdiscs of one link (the kernel dumps every link's; the others are dropped here).
    public func qdiscs(index: Int32) throws(NetlinkError) -> [Qdisc] {
        try dump {
            let message = MessageBuilder(
                type: TrafficControlUAPI.rtmGetQdisc, flags: 0, operation: "list qdiscs of link \(index)")
            message.putFixedHeader(TrafficControlUAPI.header(index: index))
            return message
        }.compactMap(Qdisc.init).filter { $0.index == index }
    }

    // MARK: Filters

    /// Redirects everything the ingress qdisc of `index` sees to the egress of `targetIndex`:
    /// `tc filter add dev X parent ffff: protocol all prio P u32 match u32 0 0 action mirred
    /// egress redirect dev T`. u32 rather than matchall: matchall is not built into every kernel.
    public func addRedirectFilter(index: Int32, to targetIndex: Int32, priority: UInt16 = 1) throws(NetlinkError) {
        let info = UInt32(priority) << 16 | UInt32(TrafficControlUAPI.allProtocols)
        let message = MessageBuilder(
            type: TrafficControlUAPI.rtmNewFilter, flags: UAPI.create,
            operation: "add redirect filter from link \(index) to link \(targetIndex)")
        message.putFixedHeader(TrafficControlUAPI.header(index: index, parent: QdiscHandle.ingress, info: info))
        message.put(TrafficControlUAPI.kind, string: "u32")
        message.nest(TrafficControlUAPI.options) {
            // struct tc_u32_sel with one key: mask 0 at offset 0 matches every packet.
            let selector =
                [TrafficControlUAPI.u32Terminal, 0, 1, 0] + hostBytes(UInt16(0)) + hostBytes(UInt16(0))
                + hostBytes(Int16(0)) + hostBytes(Int16(0)) + hostBytes(UInt32(0))
            let key = hostBytes(UInt32(0)) + hostBytes(UInt32(0)) + hostBytes(Int32(0)) + hostBytes(Int32(0))
            message.put(TrafficControlUAPI.u32Selector, selector + key)
            message.nest(TrafficControlUAPI.u32Actions) {
                message.nest(1) {
                    message.put(TrafficControlUAPI.actionKind, string: "mirred")
                    message.nest(TrafficControlUAPI.actionOptions) {
                        // struct tc_mirred: index, capab, action, refcnt, bindcnt, eaction, ifindex.
                        let parameters =
                            hostBytes(UInt32(0)) + hostBytes(UInt32(0)) + hostBytes(TrafficControlUAPI.actionStolen)
                            + hostBytes(Int32(0)) + hostBytes(Int32(0)) + hostBytes(TrafficControlUAPI.egressRedirect)
                            + hostBytes(UInt32(bitPattern: targetIndex))
                        message.put(TrafficControlUAPI.mirredParameters, parameters)
                    }
                }
            }
        }
        try execute(message)
    }

    /// The filters under `parent` (a qdisc handle such as `QdiscHandle.ingress`) of one link.
    public func filters(index: Int32, parent: UInt32) throws(NetlinkError) -> [TrafficFilter] {
        try dump {
            let message = MessageBuilder(
                type: TrafficControlUAPI.rtmGetFilter, flags: 0, operation: "list filters of link \(index)")
            message.putFixedHeader(TrafficControlUAPI.header(index: index, parent: parent))
            return message
        }.compactMap(TrafficFilter.init)
    }
}
