import CNI
import Netlink

/// The four limits, in the units of the CNI convention: rates in bits per second, bursts in
/// bits. They come top-level in the plugin config or as the `bandwidth` capability
/// (`runtimeConfig.bandwidth`), which wins: it carries the pod's own annotations.
struct BandwidthLimits: JSONReadable, Equatable {
    var ingressRate: UInt64?
    var ingressBurst: UInt64?
    var egressRate: UInt64?
    var egressBurst: UInt64?
    /// Newer reference plugins shape only some destinations with these; Pier refuses them
    /// (when not empty) rather than shaping everything while the user expects exceptions.
    var shapedSubnets: [String]?
    var unshapedSubnets: [String]?

    init() {}

    init(_ reader: JSONReader) throws(CNIError) {
        ingressRate = try Self.bits(reader, "ingressRate")
        ingressBurst = try Self.bits(reader, "ingressBurst")
        egressRate = try Self.bits(reader, "egressRate")
        egressBurst = try Self.bits(reader, "egressBurst")
        shapedSubnets = try reader.strings("shapedSubnets")
        unshapedSubnets = try reader.strings("unshapedSubnets")
    }

    /// A whole, non-negative number of bits; anything else is an error that names the key.
    private static func bits(_ reader: JSONReader, _ key: String) throws(CNIError) -> UInt64? {
        guard let value = reader.value(key) else { return nil }
        guard case .number(let text) = value else {
            throw reader.mismatch(key, expected: "a number of bits", got: value)
        }
        guard let bits = UInt64(text) else {
            throw reader.failure(key, "\(text) is not a whole number of bits between 0 and 2^64 - 1")
        }
        return bits
    }

    /// The limits of a request: the capability when the runtime sent one, else the config's.
    static func of(_ request: CNIRequest) throws(CNIError) -> BandwidthLimits {
        if let capability = try request.config.runtimeConfig("bandwidth", as: BandwidthLimits.self) {
            return capability
        }
        return try request.config.decode(BandwidthLimits.self)
    }

    /// Checks the values and turns them into one plan per direction (nil: not shaped).
    func resolved() throws(CNIError) -> (ingress: DirectionLimit?, egress: DirectionLimit?) {
        for (key, subnets) in [("shapedSubnets", shapedSubnets), ("unshapedSubnets", unshapedSubnets)] {
            if let subnets, !subnets.isEmpty {
                throw CNIError(
                    .invalidNetworkConfig,
                    "\(key) is not supported by Pier's bandwidth plugin: it shapes all traffic of the interface",
                    details: "remove \(key), or leave it empty")
            }
        }
        return (
            try DirectionLimit(rate: ingressRate, burst: ingressBurst, direction: "ingress"),
            try DirectionLimit(rate: egressRate, burst: egressBurst, direction: "egress")
        )
    }
}

/// One direction's shaping: a rate and the burst asked for, nil when it is "unset".
struct DirectionLimit: Equatable {
    /// Bits per second.
    var rate: UInt64
    /// Bits; nil when absent, zero, containerd's "unset" (2^32 - 1) or more than one second
    /// at the rate, any of which would let far more than the rate through at line speed.
    var requestedBurst: UInt64?

    /// 10 Tbit/s: more than any interface carries, and far below the kernel's 64-bit bytes/s.
    static let maximumRate: UInt64 = 10_000_000_000_000
    /// What a queued packet may wait before TBF drops (the reference's 25 ms).
    static let latencyMilliseconds: UInt64 = 25
    /// Link-layer bytes TBF counts on top of the MTU (the Ethernet header).
    static let frameOverhead: UInt32 = 14

    init?(rate: UInt64?, burst: UInt64?, direction: String) throws(CNIError) {
        let rate = rate ?? 0
        let burst = burst ?? 0
        guard rate != 0 else {
            // As the reference: a burst alone is a mistake, not a request for no shaping.
            if burst != 0 {
                throw CNIError(
                    .invalidNetworkConfig, "\(direction)Burst is set but \(direction)Rate is not: set both, or neither")
            }
            return nil
        }
        guard rate >= 8 else {
            throw CNIError(
                .invalidNetworkConfig, "\(direction)Rate \(rate) is below 8 bit/s, the smallest rate the kernel keeps")
        }
        guard rate <= Self.maximumRate else {
            throw CNIError(.invalidNetworkConfig, "\(direction)Rate \(rate) is above 10 Tbit/s")
        }
        self.rate = rate
        let unset = burst == 0 || burst >= UInt64(UInt32.max) || burst > rate
        requestedBurst = unset ? nil : burst
    }

    /// The kernel's token bucket for a device of `mtu`.
    ///
    /// An unset burst becomes a tenth of a second at the rate, so the first second carries at
    /// most 1.1 times the rate; any burst is at least two full-size frames, since TBF can never
    /// send a packet larger than its bucket and TCP needs a few in flight.
    func tokenBucket(mtu: UInt32) -> TokenBucket {
        let frame = mtu + Self.frameOverhead
        let minimumBurst = 2 * UInt64(frame)
        let burstBytes = max((requestedBurst ?? rate / 10) / 8, minimumBurst)
        let rateBytes = rate / 8
        let queued = max(rateBytes * Self.latencyMilliseconds / 1000, UInt64(frame))
        let burst = UInt32(clamping: burstBytes)
        return TokenBucket(rate: rateBytes, burst: burst, limit: UInt32(clamping: UInt64(burst) + queued))
    }
}
