import Firewall
import IPAddressing

/// Port publishing (the `portmap` plugin) inside `inet pier`: host-local destinations go
/// through one regular chain that looks the packet up in DNAT maps, host-address-bound maps
/// first. Base chains and rules are created once per host; a container only adds map
/// elements, tagged with its attachment, and DEL removes exactly those.
///
///     table inet pier {
///       map dnat_v4_bound { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
///       map dnat_v4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
///       map dnat_v6_bound { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
///       map dnat_v6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
///       set masq_all_v4 { type ipv4_addr; }      # container addresses published with masqAll
///       set masq_all_v6 { type ipv6_addr; }
///       chain published {
///         meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @dnat_v4_bound
///         meta nfproto ipv4 meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @dnat_v4
///         (the same for ip6) }
///       chain prerouting { type nat hook prerouting priority dstnat; fib daddr type local jump published }
///       chain output { type nat hook output priority dstnat; fib daddr type local jump published }
///       chain postrouting { ...
///         ct status dnat iifname . oifname @same_bridge masquerade     # hairpin (snat)
///         ct status dnat iifname "" oifname . oifname @same_bridge fib saddr type != local masquerade
///         ct status dnat ip saddr 127.0.0.0/8 masquerade                # localhost (snat)
///         ct status dnat ip daddr @masq_all_v4 masquerade               # masqAll
///         ct status dnat ip6 daddr @masq_all_v6 masquerade }
///     }
///
/// A DNAT statement ends rule evaluation for the packet, so the first map that knows the
/// destination wins: a mapping bound to one host address beats an unbound one.
public struct PortPublishing {
    public static let dnatV4 = NFTSet(
        family: .inet, table: PierTable.name, name: "dnat_v4", keyType: [.inetProtocol, .inetService],
        dataType: [.ipv4Address, .inetService])
    public static let dnatV4Bound = NFTSet(
        family: .inet, table: PierTable.name, name: "dnat_v4_bound",
        keyType: [.ipv4Address, .inetProtocol, .inetService], dataType: [.ipv4Address, .inetService])
    public static let dnatV6 = NFTSet(
        family: .inet, table: PierTable.name, name: "dnat_v6", keyType: [.inetProtocol, .inetService],
        dataType: [.ipv6Address, .inetService])
    public static let dnatV6Bound = NFTSet(
        family: .inet, table: PierTable.name, name: "dnat_v6_bound",
        keyType: [.ipv6Address, .inetProtocol, .inetService], dataType: [.ipv6Address, .inetService])
    public static let masqueradeAllV4 = NFTSet(
        family: .inet, table: PierTable.name, name: "masq_all_v4", keyType: [.ipv4Address])
    public static let masqueradeAllV6 = NFTSet(
        family: .inet, table: PierTable.name, name: "masq_all_v6", keyType: [.ipv6Address])

    public static let published = Chain(family: .inet, table: PierTable.name, name: "published")
    public static let prerouting = Chain(
        family: .inet, table: PierTable.name, name: "prerouting",
        base: BaseChainSpec(type: .nat, hook: .prerouting, priority: ChainPriority.dstnat))
    public static let output = Chain(
        family: .inet, table: PierTable.name, name: "output",
        base: BaseChainSpec(type: .nat, hook: .output, priority: ChainPriority.dstnat))

    static let maps = [dnatV4Bound, dnatV4, dnatV6Bound, dnatV6]
    static let masqueradeAllSets = [masqueradeAllV4, masqueradeAllV6]

    static func map(for family: IPFamily, bound: Bool) -> NFTSet {
        switch (family, bound) {
        case (.v4, true): dnatV4Bound
        case (.v4, false): dnatV4
        case (.v6, true): dnatV6Bound
        case (.v6, false): dnatV6
        }
    }

    /// The whole `inet pier` layout, port publishing included; idempotent.
    static var layout: Batch {
        var batch = PierTable.layout
        for set in maps + masqueradeAllSets { batch.add(set) }
        batch.add(published)
        batch.add(prerouting)
        batch.add(output)
        return batch
    }

    /// The DNAT rules and the jumps into them, plus the masquerade rules `masqAll` needs.
    static var dnatRules: [Rule] {
        let transports = IPProtocol.transports.map { SetValue.inetProtocol($0.rawValue) }
        func rule(_ chain: Chain, _ comment: String) -> Rule {
            Rule(family: .inet, table: PierTable.name, chain: chain.name, comment: comment)
        }
        return [
            rule(published, "pier:publish-v4-bound")
                .match(.l4proto, in: transports)
                .dnat(.ipv4, map: dnatV4Bound.name, key: [.ipDestination, .l4proto, .transportDestinationPort]),
            rule(published, "pier:publish-v4")
                .match(.nfproto, .eq, .inetProtocol(IPFamily.v4.addressFamily))
                .match(.l4proto, in: transports)
                .dnat(.ipv4, map: dnatV4.name, key: [.l4proto, .transportDestinationPort]),
            rule(published, "pier:publish-v6-bound")
                .match(.l4proto, in: transports)
                .dnat(.ipv6, map: dnatV6Bound.name, key: [.ip6Destination, .l4proto, .transportDestinationPort]),
            rule(published, "pier:publish-v6")
                .match(.nfproto, .eq, .inetProtocol(IPFamily.v6.addressFamily))
                .match(.l4proto, in: transports)
                .dnat(.ipv6, map: dnatV6.name, key: [.l4proto, .transportDestinationPort]),
            rule(prerouting, "pier:publish").fibDestinationIsLocal().verdict(.jump(published.name)),
            rule(output, "pier:publish").fibDestinationIsLocal().verdict(.jump(published.name)),
            rule(PierTable.postrouting, "pier:publish-masq-all-v4")
                .ctStatus(.dnat).match([.ipDestination], inSet: masqueradeAllV4.name).masquerade(),
            rule(PierTable.postrouting, "pier:publish-masq-all-v6")
                .ctStatus(.dnat).match([.ip6Destination], inSet: masqueradeAllV6.name).masquerade(),
        ]
    }

    /// `snat`: masquerade DNATed traffic that would otherwise come back the wrong way: from a
    /// container to a published port of its own bridge (hairpin), and from the host's
    /// loopback (which also needs `route_localnet` on the container's host interface).
    static var snatRules: [Rule] {
        func rule(_ comment: String) -> Rule {
            Rule(family: .inet, table: PierTable.name, chain: PierTable.postrouting.name, comment: comment)
                .ctStatus(.dnat)
        }
        var loopback = rule("pier:publish-localhost")
        if let prefix = IPPrefix("127.0.0.0/8") { loopback = loopback.match(.ipSource, prefix: prefix) }
        return [
            // Routed hairpin: in and out through the same bridge.
            rule("pier:publish-hairpin")
                .match([.iifname, .oifname], inSet: PierTable.sameBridge.name).masquerade(),
            // With br_netfilter (bridge-nf-call-iptables=1) a DNAT back onto the bridge the packet
            // came from is bridged, not routed: postrouting then sees no input interface. Packets
            // the host sends itself have no input interface either, but a local source.
            rule("pier:publish-hairpin-bridged")
                .match(.iifname, .eq, .interfaceName(""))
                .match([.oifname, .oifname], inSet: PierTable.sameBridge.name)
                .fibSourceIsLocal(negated: true).masquerade(),
            loopback.masquerade(),
        ]
    }

    /// Comments of the rules in `published`, for CHECK.
    public static var dnatRuleComments: [String] {
        dnatRules.filter { $0.chain == published.name }.compactMap(\.comment)
    }

    public let client: NFTablesClient

    public init(client: NFTablesClient) { self.client = client }

    /// Publishes `ports` for `owner` in one atomic batch together with the layout and rules.
    /// A key another attachment holds makes the whole batch fail with `isAlreadyExists`, so a
    /// refused ADD leaves nothing behind.
    public func publish(
        _ ports: [PublishedPort], owner: String, snat: Bool, masqueradeAll: Bool
    ) throws(FirewallError) {
        var batch = Batch()
        for family in IPFamily.allCases {
            for bound in [true, false] {
                let elements = ports.filter { $0.family == family && ($0.hostAddress != nil) == bound }
                    .map { $0.element(owner: owner) }
                batch.addElements(elements, to: Self.map(for: family, bound: bound).path, exclusive: true)
            }
            if masqueradeAll {
                let addresses = Set(ports.filter { $0.family == family }.map(\.container)).sorted()
                batch.addElements(
                    addresses.map { SetElement(key: [.address($0)], comment: owner) },
                    to: (family == .v4 ? Self.masqueradeAllV4 : Self.masqueradeAllV6).path)
            }
        }
        try client.apply(
            Self.layout, ensuring: PierTable.rules + Self.dnatRules + (snat ? Self.snatRules : []), changes: batch)
    }

    /// Removes everything `owner` published, in one generation-checked batch, and nothing
    /// else: keys that someone else took over in the meantime carry another tag. Returns the
    /// ports removed. A missing table or map is not an error.
    @discardableResult
    public func unpublish(owner: String) throws(FirewallError) -> [PublishedPort] {
        var removed: [PublishedPort] = []
        try client.withGenerationCheck { _ throws(FirewallError) in
            removed = []
            var batch = Batch()
            for set in Self.maps + Self.masqueradeAllSets {
                let owned = try records(of: set).filter { $0.comment == owner }
                batch.deleteElements(owned, from: set.path)
                removed += owned.compactMap { PublishedPort(record: $0, in: set) }
            }
            return batch
        }
        return removed
    }

    /// Removes what `owner` published under the keys of `ports` (their container side is
    /// ignored), with one lookup per key instead of dumps of whole maps, so a DEL costs the same
    /// with 1 or 5,000 published ports. Keys someone else holds now are left alone, in one
    /// generation-checked batch. Returns the ports removed.
    @discardableResult
    public func unpublish(_ ports: [PublishedPort], owner: String) throws(FirewallError) -> [PublishedPort] {
        var removed: [PublishedPort] = []
        try client.withGenerationCheck { _ throws(FirewallError) in
            removed = []
            var batch = Batch()
            for port in ports {
                let map = Self.map(for: port.family, bound: port.hostAddress != nil)
                guard let record = try client.element(port.keyValues, in: map.path), record.comment == owner else {
                    continue
                }
                batch.deleteElements([record], from: map.path)
                if let published = PublishedPort(record: record, in: map) { removed.append(published) }
            }
            // masqAll entries are keyed by the container addresses the removed elements pointed at.
            for (family, set) in [(IPFamily.v4, Self.masqueradeAllV4), (.v6, Self.masqueradeAllV6)] {
                let addresses = Set(removed.filter { $0.family == family }.map(\.container)).sorted()
                for address in addresses {
                    guard let record = try client.element([.address(address)], in: set.path), record.comment == owner
                    else { continue }
                    batch.deleteElements([record], from: set.path)
                }
            }
            return batch
        }
        return removed
    }

    /// What `owner` has published now (CHECK).
    public func published(by owner: String) throws(FirewallError) -> [PublishedPort] {
        var ports: [PublishedPort] = []
        for set in Self.maps {
            ports += try records(of: set).filter { $0.comment == owner }.compactMap {
                PublishedPort(record: $0, in: set)
            }
        }
        return ports
    }

    /// Who holds each of `ports`' keys now, for a clear error when a publish was refused.
    public func holders(of ports: [PublishedPort]) throws(FirewallError) -> [(PublishedPort, String)] {
        var found: [(PublishedPort, String)] = []
        for set in Self.maps {
            let wanted = ports.filter { Self.map(for: $0.family, bound: $0.hostAddress != nil).name == set.name }
            guard !wanted.isEmpty else { continue }
            let records = try records(of: set)
            for port in wanted {
                let key = port.keyValues
                if let record = records.first(where: { $0.decodedKey(set.keyType) == key }) {
                    found.append((port, record.comment ?? "unknown owner"))
                }
            }
        }
        return found
    }

    /// Owner tags present in the publishing maps and sets (GC).
    public func owners() throws(FirewallError) -> Set<String> {
        var owners = Set<String>()
        for set in Self.maps + Self.masqueradeAllSets {
            for record in try records(of: set) {
                if let owner = record.comment { owners.insert(owner) }
            }
        }
        return owners
    }

    /// Rule comments in the `published` chain (CHECK); empty when the chain is missing.
    public func publishedRuleComments() throws(FirewallError) -> Set<String> {
        do {
            return Set(
                try client.rules(family: .inet, table: PierTable.name, chain: Self.published.name).compactMap(\.comment)
            )
        } catch  where error.isNotFound {
            return []
        }
    }

    private func records(of set: NFTSet) throws(FirewallError) -> [ElementRecord] {
        do {
            return try client.elements(of: set.path)
        } catch  where error.isNotFound {
            return []
        }
    }
}

/// One published port as it sits in a DNAT map: protocol, host port and (when bound) host
/// address, to the container's address and port.
public struct PublishedPort: Sendable, Hashable, CustomStringConvertible {
    public var ipProtocol: IPProtocol
    public var hostPort: UInt16
    /// nil: every address of the host (in this family).
    public var hostAddress: IPAddress?
    public var container: IPAddress
    public var containerPort: UInt16

    public init(
        ipProtocol: IPProtocol, hostPort: UInt16, hostAddress: IPAddress?, container: IPAddress, containerPort: UInt16
    ) {
        self.ipProtocol = ipProtocol
        self.hostPort = hostPort
        self.hostAddress = hostAddress
        self.container = container
        self.containerPort = containerPort
    }

    public var family: IPFamily { container.family }

    public var description: String {
        let host = hostAddress.map { $0.family == .v6 ? "[\($0)]" : "\($0)" } ?? (family == .v4 ? "0.0.0.0" : "[::]")
        let target = family == .v6 ? "[\(container)]" : "\(container)"
        return "\(ipProtocol.name) \(host):\(hostPort) -> \(target):\(containerPort)"
    }

    var keyValues: [SetValue] {
        var key: [SetValue] = [.inetProtocol(ipProtocol.rawValue), .port(hostPort)]
        if let hostAddress { key.insert(.address(hostAddress), at: 0) }
        return key
    }

    var dataValues: [SetValue] { [.address(container), .port(containerPort)] }

    func element(owner: String) -> SetElement {
        SetElement(key: keyValues, data: dataValues, comment: owner)
    }

    /// Decodes a DNAT map element; nil for elements of other sets.
    init?(record: ElementRecord, in set: NFTSet) {
        guard let dataType = set.dataType, let key = record.decodedKey(set.keyType),
            let data = record.decodedData(dataType), data.count == 2,
            case .address(let container) = data[0], case .port(let containerPort) = data[1]
        else { return nil }
        var hostAddress: IPAddress?
        var rest = key[...]
        if key.count == 3, case .address(let address) = key[0] {
            hostAddress = address
            rest = key.dropFirst()
        }
        guard rest.count == 2, case .inetProtocol(let proto) = rest.first, case .port(let hostPort) = rest.last
        else { return nil }
        self.init(
            ipProtocol: IPProtocol(rawValue: proto), hostPort: hostPort, hostAddress: hostAddress, container: container,
            containerPort: containerPort)
    }
}
