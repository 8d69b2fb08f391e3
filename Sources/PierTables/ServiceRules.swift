import Firewall
import IPAddressing

/// Services inside `inet pier`: a virtual IP whose connections the kernel spreads over the
/// service's members. One verdict-map lookup serves every service; each service port has a
/// chain of its own with exactly one rule that picks a member and DNATs to it.
///
///     table inet pier {
///       map services_v4 { type ipv4_addr . inet_proto . inet_service : verdict; }
///       map services_v6 { type ipv6_addr . inet_proto . inet_service : verdict; }
///       set service_hairpin_v4 { type ipv4_addr . ipv4_addr; }   # "member . member"
///       set service_hairpin_v6 { type ipv6_addr . ipv6_addr; }
///       chain service_prerouting { type nat hook prerouting priority dstnat - 1;
///         ip daddr . meta l4proto . th dport vmap @services_v4
///         ip6 daddr . meta l4proto . th dport vmap @services_v6 }
///       chain service_output { type nat hook output priority dstnat - 1; (the same two rules) }
///       chain svc-<16 hex> {        # one per service, family, protocol and port
///         meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : m0 . 80, 1 : m1 . 80, 2 : m2 . 80 } }
///       chain postrouting { ...
///         ct status dnat ip saddr . ip daddr @service_hairpin_v4 masquerade
///         ct status dnat ip6 saddr . ip6 daddr @service_hairpin_v6 masquerade }
///     }
///
/// The service chains run one priority step before `prerouting`/`output` (port publishing), so
/// a VIP port is never taken for a published host port. Publishing or re-publishing a service
/// is one atomic batch of a few operations whatever the number of other services: nothing is
/// dumped and no other service's objects are touched.
public struct ServiceRules {
    public static let mapV4 = NFTSet(
        family: .inet, table: PierTable.name, name: "services_v4",
        keyType: [.ipv4Address, .inetProtocol, .inetService], dataType: [.verdict])
    public static let mapV6 = NFTSet(
        family: .inet, table: PierTable.name, name: "services_v6",
        keyType: [.ipv6Address, .inetProtocol, .inetService], dataType: [.verdict])
    public static let hairpinV4 = NFTSet(
        family: .inet, table: PierTable.name, name: "service_hairpin_v4", keyType: [.ipv4Address, .ipv4Address])
    public static let hairpinV6 = NFTSet(
        family: .inet, table: PierTable.name, name: "service_hairpin_v6", keyType: [.ipv6Address, .ipv6Address])

    public static let prerouting = Chain(
        family: .inet, table: PierTable.name, name: "service_prerouting",
        base: BaseChainSpec(type: .nat, hook: .prerouting, priority: ChainPriority.dstnat - 1))
    public static let output = Chain(
        family: .inet, table: PierTable.name, name: "service_output",
        base: BaseChainSpec(type: .nat, hook: .output, priority: ChainPriority.dstnat - 1))

    static func map(for family: IPFamily) -> NFTSet { family == .v4 ? mapV4 : mapV6 }
    static func hairpin(for family: IPFamily) -> NFTSet { family == .v4 ? hairpinV4 : hairpinV6 }

    /// Table, the base layout, the service maps, sets and base chains; idempotent.
    static var layout: Batch {
        var batch = PierTable.layout
        for set in [mapV4, mapV6, hairpinV4, hairpinV6] { batch.add(set) }
        batch.add(prerouting)
        batch.add(output)
        return batch
    }

    /// The lookups into the service maps and the hairpin masquerade, added once per host.
    static var rules: [Rule] {
        var rules: [Rule] = []
        for chain in [prerouting, output] {
            for (family, destination) in [(IPFamily.v4, Selector.ipDestination), (.v6, .ip6Destination)] {
                rules.append(
                    Rule(
                        family: .inet, table: PierTable.name, chain: chain.name,
                        comment: "pier:services-\(family == .v4 ? "v4" : "v6")"
                    )
                    .verdictMap([destination, .l4proto, .transportDestinationPort], map: map(for: family).name))
            }
        }
        for (family, source, destination) in [
            (IPFamily.v4, Selector.ipSource, Selector.ipDestination), (.v6, .ip6Source, .ip6Destination),
        ] {
            rules.append(
                Rule(
                    family: .inet, table: PierTable.name, chain: PierTable.postrouting.name,
                    comment: "pier:service-hairpin-\(family == .v4 ? "v4" : "v6")"
                )
                .ctStatus(.dnat).match([source, destination], inSet: hairpin(for: family).name).masquerade())
        }
        return rules
    }

    public let client: NFTablesClient

    public init(client: NFTablesClient) { self.client = client }

    /// Makes `vip` answer on `ports` with `members`, in one atomic batch: the service's chain
    /// (created, emptied, given its one rule), its map elements and the members' hairpin
    /// elements. Re-publishing with another member list replaces the choice atomically, so a
    /// new connection never sees a half-updated service. Members must be of `vip`'s family.
    /// With no members the VIP drops its connections (nothing to choose from).
    /// A VIP port another service holds makes the whole batch fail (`EBUSY`), changing nothing.
    public func publish(
        service: String, vip: IPAddress, ports: [ServicePort], members: [IPAddress],
        affinity: ServiceAffinity = .none
    ) throws(FirewallError) {
        try client.apply(
            Self.layout, ensuring: PierTable.rules + Self.rules,
            changes: Self.publishBatch(
                service: service, vip: vip, ports: ports, members: members, affinity: affinity))
    }

    /// The changes `publish` commits after the layout: what a service costs, element by element.
    static func publishBatch(
        service: String, vip: IPAddress, ports: [ServicePort], members: [IPAddress], affinity: ServiceAffinity
    ) -> Batch {
        let members = members.filter { $0.family == vip.family }
        var batch = Batch()
        var entries: [SetElement] = []
        for port in ports {
            let chain = Self.chain(service: service, vip: vip, port: port)
            batch.add(chain)
            batch.flush(chain)
            batch.add(rule(in: chain, service: service, port: port, members: members, affinity: affinity))
            entries.append(SetElement(key: port.key(vip), verdict: .goto(chain.name), comment: service))
        }
        batch.addElements(entries, to: map(for: vip.family).path)
        batch.addElements(
            members.map { SetElement(key: [.address($0), .address($0)], comment: hairpinTag) },
            to: hairpin(for: vip.family).path)
        return batch
    }

    /// Takes `vip`'s `ports` away from `service` in one generation-checked batch: the map
    /// elements the service holds and the service's chains. What is already gone, or held by
    /// another service now, is left alone; removing twice is not an error. Hairpin elements
    /// stay until `forgetMembers` (a member may serve several services).
    public func remove(service: String, vip: IPAddress, ports: [ServicePort]) throws(FirewallError) {
        let path = Self.map(for: vip.family).path
        try client.withGenerationCheck { _ throws(FirewallError) in
            var batch = Batch()
            for port in ports {
                let chain = Self.chain(service: service, vip: vip, port: port)
                do throws(FirewallError) {
                    if let record = try client.element(port.key(vip), in: path), record.comment == service {
                        batch.deleteElements([record], from: path)
                    }
                } catch  where error.isNotFound {
                    continue  // no table or map: nothing of any service is left
                }
                // Created if missing, then emptied and deleted: an absent chain is no error, and
                // no dump of the table's chains is needed to find out.
                batch.add(chain)
                batch.flush(chain)
                batch.delete(chain)
            }
            return batch
        }
    }

    /// Drops the hairpin elements of addresses that are no longer members of any service on
    /// this host (the runtime knows from its service records). Absent ones are skipped.
    public func forgetMembers(_ addresses: [IPAddress]) throws(FirewallError) {
        for family in IPFamily.allCases {
            let keys = addresses.filter { $0.family == family }.map { [SetValue.address($0), .address($0)] }
            guard !keys.isEmpty else { continue }
            do {
                try client.deleteElements(keys: keys, ownedBy: Self.hairpinTag, from: Self.hairpin(for: family).path)
            } catch  where error.isNotFound {
                continue
            }
        }
    }

    /// The element comment of hairpin entries: shared by every service a member is in.
    static let hairpinTag = "services"

    /// `svc-` and 16 hex digits of a stable hash of service, family, protocol and VIP port:
    /// findable from the service alone, and a valid nft identifier whatever the service is called.
    public static func chain(service: String, vip: IPAddress, port: ServicePort) -> Chain {
        let identity = "\(service)|\(vip.family == .v4 ? 4 : 6)|\(port.ipProtocol.rawValue)|\(port.port)"
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in identity.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let hex = String(hash, radix: 16)
        let name = "svc-" + String(repeating: "0", count: 16 - hex.count) + hex
        return Chain(family: .inet, table: PierTable.name, name: name)
    }

    /// `meta l4proto P dnat ip to numgen random mod N map { i : member_i . targetPort }`; with
    /// client-IP affinity `jhash ip saddr mod N` picks instead, so a client keeps its member
    /// while the member list stays the same.
    static func rule(
        in chain: Chain, service: String, port: ServicePort, members: [IPAddress], affinity: ServiceAffinity
    ) -> Rule {
        let base = Rule(family: .inet, table: PierTable.name, chain: chain.name, comment: "\(service) \(port)")
            .match(.l4proto, .eq, .inetProtocol(port.ipProtocol.rawValue))
        guard let first = members.first else { return base.verdict(.drop) }
        let isV4 = first.family == .v4
        let modulus = UInt32(members.count)
        var rule = base
        switch affinity {
        case .none:
            rule = rule.appending(.numgen(.random, modulus: modulus, into: .r1))
        case .clientIP:
            rule = rule.jhash(isV4 ? .ipSource : .ip6Source, modulus: modulus)
        }
        let choices = members.enumerated().map { index, member in
            SetElement(key: [.mark(UInt32(index))], data: [.address(member), .port(port.targetPort)])
        }
        let dataType: [NFTDataType] = [isV4 ? .ipv4Address : .ipv6Address, .inetService]
        return
            rule
            .appending(
                .lookup(
                    .anonymousMap(keyType: [.integer], dataType: dataType, elements: choices), source: .r1,
                    destination: .r1)
            )
            .appending(
                .nat(
                    .dnat, family: isV4 ? .ipv4 : .ipv6, address: .r1,
                    port: isV4 ? .r32(1) : .r32(4)))
    }
}

/// How a service picks a member for a new connection.
public enum ServiceAffinity: Sendable, Hashable {
    /// Uniformly at random (`numgen random`).
    case none
    /// By a hash of the client's address (`jhash`): one client, one member.
    case clientIP
}

/// One port of a service: the VIP's port and the members' port it is DNATed to.
public struct ServicePort: Sendable, Hashable, CustomStringConvertible {
    public var ipProtocol: IPProtocol
    public var port: UInt16
    public var targetPort: UInt16

    public init(ipProtocol: IPProtocol, port: UInt16, targetPort: UInt16? = nil) {
        self.ipProtocol = ipProtocol
        self.port = port
        self.targetPort = targetPort ?? port
    }

    public var description: String { "\(ipProtocol.name) \(port)->\(targetPort)" }

    func key(_ vip: IPAddress) -> [SetValue] { [.address(vip), .inetProtocol(ipProtocol.rawValue), .port(port)] }
}
