import IPAddressing

/// One network's names as the server answers them, built from the network's records: each
/// name answers bare and under the network's domain, and each address has a PTR to its
/// attachment's first name.
public struct NetworkZone: Sendable, Equatable {
    public var network: String
    public var gateways: [IPAddress]
    /// Lower-case domains the zone is authoritative for (`dns.pier`).
    public var domains: [String]
    public var isInternal: Bool
    /// Configured upstreams; empty means the host's resolv.conf.
    public var upstreams: [DNSUpstream]
    var addressesByName: [String: [IPAddress]] = [:]
    var targetsByReverseName: [String: [String]] = [:]
    /// Which container holds an address (a query's source), and its own upstreams if it has any.
    public private(set) var containerByAddress: [IPAddress: String] = [:]
    public private(set) var upstreamsByAddress: [IPAddress: [DNSUpstream]] = [:]

    public init(network: String, records: [NameRecord]) {
        self.network = network
        var gateways: [IPAddress] = []
        var domains: [String] = []
        var upstreams: [DNSUpstream] = []
        isInternal = false
        for record in records {
            for gateway in record.gateways where !gateways.contains(gateway) { gateways.append(gateway) }
            let domain = Self.key(record.domainName)
            if !domain.isEmpty && !domains.contains(domain) { domains.append(domain) }
            // One attachment configured internal is enough: leaking a query is the worse mistake.
            isInternal = isInternal || record.isInternal
            for upstream in record.upstreams where !upstreams.contains(upstream) { upstreams.append(upstream) }
        }
        self.gateways = gateways
        self.domains = domains
        self.upstreams = upstreams
        for record in records {
            let domain = Self.key(record.domainName)
            for name in record.names {
                let bare = Self.key(name)
                for key in domain.isEmpty ? [bare] : [bare, bare + "." + domain] {
                    var addresses = addressesByName[key] ?? []
                    for address in record.addresses where !addresses.contains(address) { addresses.append(address) }
                    addressesByName[key] = addresses
                }
            }
            for address in record.addresses {
                containerByAddress[address] = record.containerID
                if !record.containerUpstreams.isEmpty { upstreamsByAddress[address] = record.containerUpstreams }
            }
            guard let first = record.names.first else { continue }
            let target = domain.isEmpty ? Self.key(first) : Self.key(first) + "." + domain
            for address in record.addresses {
                let reverse = Self.reverseName(address)
                var targets = targetsByReverseName[reverse] ?? []
                if !targets.contains(target) { targets.append(target) }
                targetsByReverseName[reverse] = targets
            }
        }
    }

    /// The addresses of a name (a lookup key: lower case, no trailing dot), nil if unknown.
    public func addresses(of key: String) -> [IPAddress]? { addressesByName[key] }

    /// PTR targets of a reverse name (`2.0.88.10.in-addr.arpa`), nil if not a container's.
    public func pointerTargets(of key: String) -> [String]? { targetsByReverseName[key] }

    /// True when `key` is inside a domain this zone answers for, so an unknown name there is
    /// NXDOMAIN rather than something to forward.
    public func isAuthoritative(for key: String) -> Bool {
        domains.contains { key == $0 || key.hasSuffix("." + $0) }
    }

    static func key(_ name: String) -> String {
        DNSName(name)?.lookupKey ?? name.lowercased()
    }

    /// `d.c.b.a.in-addr.arpa` or the 32 reversed nibbles under `ip6.arpa`.
    public static func reverseName(_ address: IPAddress) -> String {
        switch address.family {
        case .v4:
            return address.bytes.reversed().map(String.init).joined(separator: ".") + ".in-addr.arpa"
        case .v6:
            let nibbles = address.bytes.flatMap { [$0 >> 4, $0 & 0xF] }
            return nibbles.reversed().map { String($0, radix: 16) }.joined(separator: ".") + ".ip6.arpa"
        }
    }

    /// Every network's zone from a list of records.
    public static func zones(_ records: [NameRecord]) -> [String: NetworkZone] {
        var byNetwork: [String: [NameRecord]] = [:]
        for record in records { byNetwork[record.network, default: []].append(record) }
        return byNetwork.mapValues { NetworkZone(network: $0[0].network, records: $0) }
    }
}
