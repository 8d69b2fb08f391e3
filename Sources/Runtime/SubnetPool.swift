import IPAddressing
import NetNS
import Netlink

/// Where `pier network create` finds a subnet when none is given, as Docker does from its default
/// address pools: `172.17.0.0/16` … `172.31.0.0/16`, then `192.168.0.0/20` … `192.168.240.0/20`; the first
/// that overlaps neither another network's subnet nor anything the host routes or holds. IPv6 gets a
/// unique local /64 derived from the network's name, so it is the same on every host.
public enum SubnetPool {
    public static let ipv4Candidates: [IPPrefix] = {
        let docker = (17...31).compactMap { IPPrefix("172.\($0).0.0/16") }
        let small = stride(from: 0, to: 256, by: 16).compactMap { IPPrefix("192.168.\($0).0/20") }
        return docker + small
    }()

    /// The first IPv4 candidate that overlaps nothing in `taken`.
    public static func pickIPv4(avoiding taken: [IPPrefix]) -> IPPrefix? {
        ipv4Candidates.first { candidate in !taken.contains { $0.family == .v4 && $0.overlaps(candidate) } }
    }

    /// `fdXX:XXXX:XXXX:YYYY::/64`: the global ID and subnet ID from the name's hash (RFC 4193 wants them
    /// random; a hash keeps them stable). A taken one moves on to the next subnet ID.
    public static func pickIPv6(network name: String, avoiding taken: [IPPrefix]) -> IPPrefix? {
        let hash = SHA512.hash(Array(name.utf8))
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes[0] = 0xfd
        for index in 1..<8 { bytes[index] = hash[index] }
        for step in 0..<256 {
            bytes[7] = hash[7] &+ UInt8(step)
            guard let address = IPAddress(bytes: bytes), let prefix = IPPrefix(address: address, length: 64) else {
                return nil
            }
            if !taken.contains(where: { $0.family == .v6 && $0.overlaps(prefix) }) { return prefix }
        }
        return nil
    }

    /// Every route destination and address of the network namespace `pier` runs in (default routes and
    /// link-local ones left out: they overlap everything and nothing), read over netlink.
    public static func hostPrefixes() -> [IPPrefix] {
        guard let netlink = try? RouteNetlink() else { return [] }
        var prefixes: [IPPrefix] = []
        for family in IPFamily.allCases {
            for route in (try? netlink.routes(family: family)) ?? [] where !route.isDefault {
                prefixes.append(route.destination)
            }
            for address in (try? netlink.addresses(family: family)) ?? [] {
                prefixes.append(address.prefix.network)
            }
        }
        return prefixes.filter { !$0.address.isLinkLocal && !$0.address.isLoopback }
    }
}
