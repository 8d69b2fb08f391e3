import IPAddressing

/// One pool of addresses inside a subnet, with defaults applied: host-local's `Range`.
public struct AddressRange: Sendable, Hashable, CustomStringConvertible {
    /// The subnet (network address, no host bits).
    public let subnet: IPPrefix
    /// First and last address handed out, inclusive.
    public let start: IPAddress
    public let end: IPAddress
    /// Returned as the gateway and never handed out.
    public let gateway: IPAddress

    public var family: IPFamily { subnet.family }

    /// `start-end`, as host-local prints ranges in its errors.
    public var description: String { "\(start)-\(end)" }

    /// True when `address` lies in `start...end`.
    public func contains(_ address: IPAddress) -> Bool {
        address.family == family && start <= address && address <= end
    }

    public func overlaps(_ other: AddressRange) -> Bool {
        family == other.family && start <= other.end && other.start <= end
    }

    /// Validates one range and fills in host-local's defaults: start = network+1,
    /// end = broadcast−1 (IPv4) or the last address (IPv6), gateway = network+1.
    public init(
        subnet subnetText: String, rangeStart: String? = nil, rangeEnd: String? = nil, gateway: String? = nil
    ) throws(IPAMError) {
        guard let parsed = IPPrefix(subnetText) else {
            throw IPAMError(.invalidConfig, "invalid subnet \"\(subnetText)\": want a CIDR like 10.1.0.0/16")
        }
        guard parsed.address == parsed.firstAddress else {
            throw IPAMError(
                .invalidConfig,
                "subnet \(subnetText) has host bits set; the network address for /\(parsed.length) is \(parsed.network)"
            )
        }
        // host-local's rule: at least two host bits, so a range can exist beside the network
        // address, the gateway and (v4) broadcast.
        guard parsed.length <= parsed.family.bitCount - 2 else {
            throw IPAMError(
                .invalidConfig,
                "subnet \(subnetText) is too small to allocate from (at most /\(parsed.family.bitCount - 2))")
        }
        subnet = parsed
        let network = parsed.firstAddress
        let last = parsed.lastAddress
        let broadcast: IPAddress? = parsed.family == .v4 ? last : nil

        func address(_ text: String?, _ key: String, default fallback: IPAddress?) throws(IPAMError) -> IPAddress? {
            guard let text else { return fallback }
            guard let value = IPAddress(text) else {
                throw IPAMError(.invalidConfig, "invalid \(key) \"\(text)\" in range \(subnetText): not an IP address")
            }
            guard parsed.contains(value) else {
                throw IPAMError(.invalidConfig, "\(key) \(value) is outside subnet \(subnetText)")
            }
            return value
        }

        let defaultFirst = network.advanced(by: 1)
        let defaultLast = parsed.family == .v4 ? last.advanced(by: -1) : last
        guard let start = try address(rangeStart, "rangeStart", default: defaultFirst),
            let end = try address(rangeEnd, "rangeEnd", default: defaultLast),
            let gateway = try address(gateway, "gateway", default: defaultFirst)
        else {
            // Unreachable for prefixes of /30 (/126) and shorter; kept as an error, not a trap.
            throw IPAMError(.invalidConfig, "subnet \(subnetText) has no usable addresses")
        }
        guard start != network else {
            throw IPAMError(.invalidConfig, "rangeStart \(start) is the network address of \(subnetText)")
        }
        guard end != broadcast else {
            throw IPAMError(.invalidConfig, "rangeEnd \(end) is the broadcast address of \(subnetText)")
        }
        guard gateway != network && gateway != broadcast else {
            throw IPAMError(.invalidConfig, "gateway \(gateway) is the network or broadcast address of \(subnetText)")
        }
        guard start <= end else {
            throw IPAMError(.invalidConfig, "rangeStart \(start) is after rangeEnd \(end) in \(subnetText)")
        }
        self.start = start
        self.end = end
        self.gateway = gateway
    }
}

/// The alternatives one address is allocated from: host-local's `RangeSet`. One address
/// per set per ADD, so a dual-stack config has a v4 set and a v6 set.
public struct RangeSet: Sendable, Hashable, CustomStringConvertible {
    public let ranges: [AddressRange]

    public var family: IPFamily { ranges[0].family }

    /// `a-b,c-d`, as host-local names a set in "no IP addresses available in range set".
    public var description: String { ranges.map(\.description).joined(separator: ",") }

    /// Validates a set: non-empty, one family, no overlapping ranges.
    public init(_ ranges: [AddressRange]) throws(IPAMError) {
        guard let first = ranges.first else { throw IPAMError(.invalidConfig, "empty range set") }
        for range in ranges where range.family != first.family {
            throw IPAMError(
                .invalidConfig,
                "range set mixes address families: \(first.subnet) and \(range.subnet); use one range set per family")
        }
        for (index, range) in ranges.enumerated() {
            for other in ranges[(index + 1)...] where range.overlaps(other) {
                throw IPAMError(
                    .invalidConfig,
                    "ranges \(range) (\(range.subnet)) and \(other) (\(other.subnet)) overlap in one range set")
            }
        }
        self.ranges = ranges
    }

    public func contains(_ address: IPAddress) -> Bool { range(for: address) != nil }

    public func range(for address: IPAddress) -> AddressRange? { ranges.first { $0.contains(address) } }

    /// Where `address` comes in the order addresses are handed out (its range, then the address
    /// within it); nil outside the set.
    func handOutPosition(of address: IPAddress) -> (range: Int, address: IPAddress)? {
        ranges.firstIndex { $0.contains(address) }.map { ($0, address) }
    }

    public func overlaps(_ other: RangeSet) -> Bool {
        ranges.contains { range in other.ranges.contains { range.overlaps($0) } }
    }

    /// Every gateway of the set: none of them is ever handed out, whichever range it is in.
    public var gateways: Set<IPAddress> { Set(ranges.map(\.gateway)) }
}
