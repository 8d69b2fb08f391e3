/// An address with a prefix length, as CIDR text `10.1.2.3/24`. The host bits are kept, so
/// the same type serves for an interface address and (via `network`) for a subnet.
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init?(address: IPAddress, length: Int) {
        guard length >= 0 && length <= address.family.bitCount else { return nil }
        self.address = address
        self.length = length
    }

    /// The host prefix of `address`: /32 or /128.
    public init(host address: IPAddress) {
        self.address = address
        self.length = address.family.bitCount
    }

    /// Parses `address/length`. With `allowBareAddress`, a lone address means a host prefix
    /// (/32 or /128), as CNI's `ips` capability allows.
    public init?(_ text: String, allowBareAddress: Bool = false) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count == 1 && allowBareAddress, let address = IPAddress(text) {
            self.init(host: address)
            return
        }
        guard parts.count == 2, let address = IPAddress(String(parts[0])),
            !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy({ $0.isNumber && $0.isASCII }),
            let length = Int(parts[1])
        else { return nil }
        self.init(address: address, length: length)
    }

    public var family: IPFamily { address.family }

    /// A /32 or /128: one address, no subnet.
    public var isHost: Bool { length == family.bitCount }

    /// The subnet: host bits cleared.
    public var network: IPPrefix {
        // Safe: the length was already validated for this family.
        IPPrefix(unchecked: address.masked(to: length), length: length)
    }

    /// The first address of the subnet (the network address).
    public var firstAddress: IPAddress { address.masked(to: length) }
    /// The last address of the subnet (the IPv4 broadcast address).
    public var lastAddress: IPAddress { address.masked(to: length, settingHostBits: true) }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && other.masked(to: length) == firstAddress
    }

    /// True when the two subnets share any address.
    public func overlaps(_ other: IPPrefix) -> Bool {
        guard other.family == family else { return false }
        let shorter = min(length, other.length)
        return address.masked(to: shorter) == other.address.masked(to: shorter)
    }

    /// The netmask as an address (255.255.255.0 for /24), for the 0.2.0 result and sysfs.
    public var netmask: IPAddress {
        switch family {
        case .v4:
            return IPAddress.v4(UInt32.max).masked(to: length)
        case .v6:
            return IPAddress.v6(high: .max, low: .max).masked(to: length)
        }
    }

    public var description: String { "\(address)/\(length)" }

    private init(unchecked address: IPAddress, length: Int) {
        self.address = address
        self.length = length
    }
}

extension IPPrefix: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = IPPrefix(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "invalid CIDR \"\(text)\""))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
