/// An IP protocol number (the IPv4 protocol / IPv6 next-header field, `meta l4proto` in
/// nftables), with the names a port mapping and a listing use.
public struct IPProtocol: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let tcp = IPProtocol(rawValue: 6)
    public static let udp = IPProtocol(rawValue: 17)
    public static let sctp = IPProtocol(rawValue: 132)

    /// The transports a port can be published for, by the names CNI `portMappings` use.
    public static let transports: [IPProtocol] = [.tcp, .udp, .sctp]

    /// `tcp`, `udp` or `sctp` (any case); nil for any other name.
    public init?(name: String) {
        let lowered = name.lowercased()
        guard let known = IPProtocol.transports.first(where: { $0.name == lowered }) else { return nil }
        self = known
    }

    /// `tcp`, `udp`, `sctp`, or `proto N` for a number without a name here.
    public var name: String {
        switch rawValue {
        case 6: "tcp"
        case 17: "udp"
        case 132: "sctp"
        default: "proto \(rawValue)"
        }
    }

    public var description: String { name }
}
