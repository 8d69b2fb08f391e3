import Firewall
import Glibc
import IPAddressing

/// Services inside `inet pier`: a virtual IP whose connections the kernel spreads over the
/// service's members. Two fixed rules per family serve every service; a service port is
/// `slotsPerPort` elements of a map that say which member each slot DNATs to.
///
///     table inet pier {
///       map service_slots_v4 { type ipv4_addr . inet_proto . inet_service . integer : ipv4_addr . inet_service; }
///       map service_affinity_v4 { (the same types) }       # services with client-IP affinity
///       map service_slots_v6, service_affinity_v6 { ipv6_addr ... : ipv6_addr . inet_service; }
///       set service_hairpin_v4 { type ipv4_addr . ipv4_addr; }   # "member . member"
///       set service_hairpin_v6 { type ipv6_addr . ipv6_addr; }
///       chain service_prerouting { type nat hook prerouting priority dstnat - 1;
///         dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 60 map @service_slots_v4
///         dnat ip to ip daddr . meta l4proto . th dport . jhash ip saddr mod 60 map @service_affinity_v4
///         (the same for ip6) }
///       chain service_output { type nat hook output priority dstnat - 1; (the same rules) }
///       chain postrouting { ...
///         ct status dnat ip saddr . ip daddr @service_hairpin_v4 masquerade
///         ct status dnat ip6 saddr . ip6 daddr @service_hairpin_v6 masquerade }
///     }
///
/// Updates are elements only. A new rule or a jump/goto element makes the kernel revalidate the
/// whole table on commit, which grows with the number of services (~1 µs each, measured in
/// bench/results/services.md); elements do not. So adding a service or a member costs the
/// same with 10 or 10,000 services. The chains run one priority step before port publishing,
/// so a VIP port is never taken for a published host port.
public struct ServiceRules {
    /// Slots per service port: members are assigned round robin, so the spread is exact for
    /// every member count dividing 60 (1-6, 10, 12, 15, 20, 30, 60) and within one slot
    /// (1/60 of the connections) otherwise.
    public static let slotsPerPort = 60

    public static let slotsV4 = slotMap("service_slots_v4", .v4)
    public static let slotsV6 = slotMap("service_slots_v6", .v6)
    public static let affinityV4 = slotMap("service_affinity_v4", .v4)
    public static let affinityV6 = slotMap("service_affinity_v6", .v6)
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

    /// The slot field is typed `mark` (32 bits, host byte order, like `numgen`'s result): nft
    /// cannot list a named map whose concatenation has a plain `integer` field.
    private static func slotMap(_ name: String, _ family: IPFamily) -> NFTSet {
        let address: NFTDataType = family == .v4 ? .ipv4Address : .ipv6Address
        return NFTSet(
            family: .inet, table: PierTable.name, name: name,
            keyType: [address, .inetProtocol, .inetService, .mark], dataType: [address, .inetService])
    }

    static func map(for family: IPFamily, affinity: ServiceAffinity) -> NFTSet {
        switch (family, affinity) {
        case (.v4, .none): slotsV4
        case (.v4, .clientIP): affinityV4
        case (.v6, .none): slotsV6
        case (.v6, .clientIP): affinityV6
        }
    }

    static func hairpin(for family: IPFamily) -> NFTSet { family == .v4 ? hairpinV4 : hairpinV6 }

    /// Table, the base layout, the service maps, sets and base chains; idempotent.
    static var layout: Batch {
        var batch = PierTable.layout
        for set in [slotsV4, affinityV4, slotsV6, affinityV6, hairpinV4, hairpinV6] { batch.add(set) }
        batch.add(prerouting)
        batch.add(output)
        return batch
    }

    /// The slot lookups and the hairpin masquerade, added once per host.
    static var rules: [Rule] {
        var rules: [Rule] = []
        for chain in [prerouting, output] {
            for family in IPFamily.allCases {
                for affinity in [ServiceAffinity.none, .clientIP] {
                    rules.append(slotRule(in: chain, family: family, affinity: affinity))
                }
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

    /// `dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 60 map @service_slots_v4`
    /// (or `jhash ip saddr mod 60` into the affinity map). The concatenated key is laid out as
    /// nft lays concatenations out: the address from reg 1, then one 32-bit word per field.
    static func slotRule(in chain: Chain, family: IPFamily, affinity: ServiceAffinity) -> Rule {
        let isV4 = family == .v4
        let addressWords: UInt32 = isV4 ? 1 : 4
        let name = "pier:services-\(isV4 ? "v4" : "v6")\(affinity == .clientIP ? "-affinity" : "")"
        var expressions: [Expression] = [
            .meta(.nfproto, into: .r1), .cmp(.eq, .r1, [family.addressFamily]),
        ]
        if affinity == .clientIP {
            // The source goes to a 16-byte register clear of the key's words (reg 2 for a
            // 4-word IPv4 key, reg 3 for the 7-word IPv6 key).
            let source = Register(rawValue: isV4 ? 2 : 3)
            expressions.append(.payload(.network, offset: isV4 ? 12 : 8, length: isV4 ? 4 : 16, into: source))
            expressions += keyLoads(isV4: isV4, addressWords: addressWords)
            expressions.append(
                .jhash(
                    source: source, length: isV4 ? 4 : 16, modulus: UInt32(slotsPerPort), seed: 0,
                    into: .r32(addressWords + 2)))
        } else {
            expressions += keyLoads(isV4: isV4, addressWords: addressWords)
            expressions.append(.numgen(.random, modulus: UInt32(slotsPerPort), into: .r32(addressWords + 2)))
        }
        expressions.append(.lookup(.named(map(for: family, affinity: affinity).name), source: .r1, destination: .r1))
        expressions.append(.nat(.dnat, family: isV4 ? .ipv4 : .ipv6, address: .r1, port: .r32(addressWords)))
        return Rule(family: .inet, table: PierTable.name, chain: chain.name, expressions: expressions, comment: name)
    }

    private static func keyLoads(isV4: Bool, addressWords: UInt32) -> [Expression] {
        [
            .payload(.network, offset: isV4 ? 16 : 24, length: isV4 ? 4 : 16, into: .r1),
            .meta(.l4proto, into: .r32(addressWords)),
            .payload(.transport, offset: 2, length: 2, into: .r32(addressWords + 1)),
        ]
    }

    public let client: NFTablesClient

    public init(client: NFTablesClient) { self.client = client }

    /// Makes `vip` answer on `ports` with `members` in one generation-checked batch: each
    /// port's slots (replaced if the service had them, in either map) and the members' hairpin
    /// elements. Re-publishing with another member list swaps the choice atomically, so a new
    /// connection never sees a half-updated service. Members of another family are ignored.
    /// With no members the VIP port is not answered. A VIP port another service holds refuses
    /// the whole publish (`EBUSY`) and changes nothing.
    public func publish(
        service: String, vip: IPAddress, ports: [ServicePort], members: [IPAddress],
        affinity: ServiceAffinity = .none
    ) throws(FirewallError) {
        let distinct = Self.distinct(members, family: vip.family)
        guard distinct.count <= Self.slotsPerPort else {
            throw FirewallError(
                "publish service \(service)",
                object: "\(distinct.count) members: a service port takes at most \(Self.slotsPerPort)", errno: E2BIG)
        }
        // The layout first (reads only, once it exists), then the service's own elements in one
        // generation-checked batch, so a concurrent publish of the same VIP port cannot interleave.
        try client.apply(Self.layout, ensuring: PierTable.rules + Self.rules)
        try client.withGenerationCheck { _ throws(FirewallError) in
            var batch = Batch()
            for port in ports {
                for held in try heldSlots(of: port, vip: vip) {
                    guard held.owner == service else {
                        throw FirewallError(
                            "publish service \(service)", object: "\(vip) \(port) is held by \(held.owner)",
                            errno: EBUSY)
                    }
                    batch.deleteElements(Self.slots(of: port, vip: vip, members: []), from: held.map.path)
                }
            }
            batch.append(
                contentsOf: Self.publishBatch(
                    service: service, vip: vip, ports: ports, members: members, affinity: affinity))
            return batch
        }
    }

    /// Which maps hold `port` of `vip` now, and for whom: one GET of slot 0 per map.
    private func heldSlots(of port: ServicePort, vip: IPAddress) throws(FirewallError) -> [(map: NFTSet, owner: String)]
    {
        var held: [(map: NFTSet, owner: String)] = []
        for affinity in [ServiceAffinity.none, .clientIP] {
            let map = Self.map(for: vip.family, affinity: affinity)
            do {
                if let record = try client.element(port.key(vip) + [.mark(0)], in: map.path) {
                    held.append((map, record.comment ?? "unknown owner"))
                }
            } catch  where error.isNotFound {
                continue
            }
        }
        return held
    }

    /// The elements a service adds for `ports`: `slotsPerPort` slots each, and its members'
    /// hairpin entries. Constant per port whatever else the table holds.
    static func publishBatch(
        service: String, vip: IPAddress, ports: [ServicePort], members: [IPAddress], affinity: ServiceAffinity
    ) -> Batch {
        let members = distinct(members, family: vip.family)
        var batch = Batch()
        guard !members.isEmpty else { return batch }
        let map = map(for: vip.family, affinity: affinity)
        for port in ports {
            batch.addElements(slots(of: port, vip: vip, members: members, owner: service), to: map.path)
        }
        batch.addElements(
            members.map { SetElement(key: [.address($0), .address($0)], comment: hairpinTag) },
            to: hairpin(for: vip.family).path)
        return batch
    }

    /// `members` of `family`, each once, in the order given.
    static func distinct(_ members: [IPAddress], family: IPFamily) -> [IPAddress] {
        var seen = Set<IPAddress>()
        return members.filter { $0.family == family && seen.insert($0).inserted }
    }

    /// Slot `i` of a port DNATs to member `i mod N`; with no members, the keys alone (deletes).
    static func slots(of port: ServicePort, vip: IPAddress, members: [IPAddress], owner: String? = nil)
        -> [SetElement]
    {
        (0..<slotsPerPort).map { slot in
            let key = port.key(vip) + [.mark(UInt32(slot))]
            guard !members.isEmpty else { return SetElement(key: key) }
            return SetElement(
                key: key, data: [.address(members[slot % members.count]), .port(port.targetPort)], comment: owner)
        }
    }

    /// Takes `vip`'s `ports` away from `service` in one generation-checked batch. Ports that
    /// are already gone, or that another service holds now, are left alone; removing twice is
    /// not an error. Hairpin elements stay until `forgetMembers` (a member may serve several
    /// services).
    public func remove(service: String, vip: IPAddress, ports: [ServicePort]) throws(FirewallError) {
        try client.withGenerationCheck { _ throws(FirewallError) in
            var batch = Batch()
            for port in ports {
                for held in try heldSlots(of: port, vip: vip) where held.owner == service {
                    batch.deleteElements(Self.slots(of: port, vip: vip, members: []), from: held.map.path)
                }
            }
            return batch
        }
    }

    /// The members `vip:port` DNATs to now, in slot order without repeats (inspect, tests).
    public func members(vip: IPAddress, port: ServicePort) throws(FirewallError) -> [IPAddress] {
        var found: [IPAddress] = []
        for held in try heldSlots(of: port, vip: vip) {
            for slot in 0..<Self.slotsPerPort {
                guard let record = try client.element(port.key(vip) + [.mark(UInt32(slot))], in: held.map.path),
                    let dataType = held.map.dataType, let data = record.decodedData(dataType),
                    case .address(let member) = data.first
                else { continue }
                if !found.contains(member) { found.append(member) }
            }
        }
        return found
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
}

/// How a service picks a member for a new connection.
public enum ServiceAffinity: Sendable, Hashable {
    /// Uniformly at random (`numgen random`).
    case none
    /// By a hash of the client's address (`jhash`): one client, one member while the member
    /// list stays the same.
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
