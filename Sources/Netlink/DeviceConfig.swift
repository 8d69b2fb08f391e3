import CPierShim
import IPAddressing

/// Per-interface IPv6 settings as RTM_NEWLINK reports them (IFLA_AF_SPEC > AF_INET6 >
/// IFLA_INET6_CONF, an array of s32 indexed by DEVCONF_*, linux/ipv6.h). Reading them from a
/// link message the plugin fetched anyway spares a /proc/sys lookup, which compares against
/// the same names in every other network namespace of the host.
public enum IPv6DeviceConfig: Int, Sendable {
    case acceptRA = 3  // DEVCONF_ACCEPT_RA
    case disableIPv6 = 26  // DEVCONF_DISABLE_IPV6
}

/// How the kernel makes a link's IPv6 link-local address (IN6_ADDR_GEN_MODE_*, linux/if_link.h).
public enum IPv6AddressGeneration: UInt8, Sendable, CustomStringConvertible {
    case eui64 = 0
    /// No link-local address at all: for links that only carry frames, such as bridge ports.
    case none = 1
    case stablePrivacy = 2
    case random = 3

    public var description: String {
        switch self {
        case .eui64: "eui64"
        case .none: "none"
        case .stablePrivacy: "stable_secret"
        case .random: "random"
        }
    }
}

extension Link {
    /// The link's IPv4 setting, or nil when the kernel reported none.
    public func ipv4Setting(_ setting: IPv4DeviceConfig) -> UInt32? {
        // IFLA_INET_CONF starts at IPV4_DEVCONF_FORWARDING (1): index n is setting n + 1.
        guard let values = ipv4DeviceConfig, values.indices.contains(Int(setting.rawValue) - 1) else { return nil }
        return values[Int(setting.rawValue) - 1]
    }

    /// The link's IPv6 setting, or nil when the kernel reported none (IPv6 off or absent).
    public func ipv6Setting(_ setting: IPv6DeviceConfig) -> Int32? {
        guard let values = ipv6DeviceConfig, values.indices.contains(setting.rawValue) else { return nil }
        return values[setting.rawValue]
    }
}

extension RouteNetlink {
    /// Whether forwarding is on for the whole namespace (`net.ipv4.ip_forward`, or
    /// `net.ipv6.conf.all.forwarding`), asked with RTM_GETNETCONF for NETCONFA_IFINDEX_ALL
    /// instead of reading /proc/sys. nil when the kernel did not say.
    public func forwarding(_ family: IPFamily) throws(NetlinkError) -> Bool? {
        let message = MessageBuilder(
            type: UInt16(RTM_GETNETCONF), flags: 0, operation: "get \(family == .v4 ? "ipv4" : "ipv6") forwarding")
        // struct netconfmsg { u8 family; }, padded to 4 bytes.
        message.putFixedHeader([family.addressFamily, 0, 0, 0])
        message.put(UInt16(NETCONFA_IFINDEX), i32: Int32(NETCONFA_IFINDEX_ALL))
        for reply in try execute(message) where reply.type == UInt16(RTM_NEWNETCONF) {
            if let value = Attributes(reply.payload, from: 4).i32(UInt16(NETCONFA_FORWARDING)) { return value != 0 }
        }
        return nil
    }
}
