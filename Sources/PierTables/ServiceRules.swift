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
///       map service_vips_v4 { type ipv4_addr . mark : ipv4_addr; }   # every port of a VIP
///       map service_vips_affinity_v4 { (the same types) }
///       map service_mesh_v4 { type inet_proto . inet_service . mark : ipv4_addr . inet_service; }
///       set service_hairpin_v4 { type ipv4_addr . ipv4_addr; }   # "member . member"
///       set service_hairpin_v6 { type ipv6_addr . ipv6_addr; }
///       chain service_prerouting { type nat hook prerouting priority dstnat - 1;
///         dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 60 map @service_slots_v4
///         dnat ip to ip daddr . meta l4proto . th dport . jhash ip saddr mod 60 map @service_affinity_v4
///         dnat ip to ip daddr . numgen random mod 60 map @service_vips_v4          # port kept
///         dnat ip to ip daddr . jhash ip saddr mod 60 map @service_vips_affinity_v4
///         fib daddr type local meta l4proto . th dport . 0 @service_mesh_v4 meta mark set meta mark | 0x02000000
///         fib daddr type local dnat ip to meta l4proto . th dport . numgen random mod 60 map @service_mesh_v4
///         (the same for ip6) }
///       chain service_output { type nat hook output priority dstnat - 1; (the same rules) }
///       chain postrouting { ...
///         ct status dnat ip saddr . ip daddr @service_hairpin_v4 masquerade
///         meta mark & 0x02000000 == 0x02000000 masquerade      # routing mesh
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

    /// The packet-mark bit of connections the routing mesh DNATs: they are masqueraded, since
    /// the member's reply would otherwise go straight to the client from another host. One bit
    /// beside `PierTable.trafficMark`, set with `|` so other software's bits are kept.
    public static let meshMark: UInt32 = 0x0200_0000

    public static let slotsV4 = slotMap("service_slots_v4", .v4, .port)
    public static let slotsV6 = slotMap("service_slots_v6", .v6, .port)
    public static let affinityV4 = slotMap("service_affinity_v4", .v4, .port)
    public static let affinityV6 = slotMap("service_affinity_v6", .v6, .port)
    public static let vipsV4 = slotMap("service_vips_v4", .v4, .allPorts)
    public static let vipsV6 = slotMap("service_vips_v6", .v6, .allPorts)
    public static let vipsAffinityV4 = slotMap("service_vips_affinity_v4", .v4, .allPorts)
    public static let vipsAffinityV6 = slotMap("service_vips_affinity_v6", .v6, .allPorts)
    public static let meshV4 = slotMap("service_mesh_v4", .v4, .mesh)
    public static let meshV6 = slotMap("service_mesh_v6", .v6, .mesh)
    /// Overlay bridge -> the address this host's mesh connections leave it from (`MeshSource`).
    public static let meshSourceV4 = NFTSet(
        family: .inet, table: PierTable.name, name: "service_mesh_source_v4", keyType: [.interfaceName],
        dataType: [.ipv4Address])
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

    /// What a map's key holds besides the slot: one port of a VIP, a whole VIP, or a port on
    /// every local address (the routing mesh).
    enum KeyShape { case port, allPorts, mesh }

    /// The slot field is typed `mark` (32 bits, host byte order, like `numgen`'s result): nft
    /// cannot list a named map whose concatenation has a plain `integer` field.
    private static func slotMap(_ name: String, _ family: IPFamily, _ shape: KeyShape) -> NFTSet {
        let address: NFTDataType = family == .v4 ? .ipv4Address : .ipv6Address
        let key: [NFTDataType] =
            switch shape {
            case .port: [address, .inetProtocol, .inetService, .mark]
            case .allPorts: [address, .mark]
            case .mesh: [.inetProtocol, .inetService, .mark]
            }
        return NFTSet(
            family: .inet, table: PierTable.name, name: name, keyType: key,
            dataType: shape == .allPorts ? [address] : [address, .inetService])
    }

    static func map(for family: IPFamily, affinity: ServiceAffinity, shape: KeyShape = .port) -> NFTSet {
        switch (shape, family, affinity) {
        case (.port, .v4, .none): slotsV4
        case (.port, .v4, .clientIP): affinityV4
        case (.port, .v6, .none): slotsV6
        case (.port, .v6, .clientIP): affinityV6
        case (.allPorts, .v4, .none): vipsV4
        case (.allPorts, .v4, .clientIP): vipsAffinityV4
        case (.allPorts, .v6, .none): vipsV6
        case (.allPorts, .v6, .clientIP): vipsAffinityV6
        case (.mesh, .v4, _): meshV4
        case (.mesh, .v6, _): meshV6
        }
    }

    static func hairpin(for family: IPFamily) -> NFTSet { family == .v4 ? hairpinV4 : hairpinV6 }

    /// The map holding whole VIPs of `family` with `affinity` (for inspect).
    public static func vipMap(for family: IPFamily, affinity: ServiceAffinity) -> NFTSet {
        map(for: family, affinity: affinity, shape: .allPorts)
    }

    /// The routing mesh's map of `family` (for inspect).
    public static func meshMap(for family: IPFamily) -> NFTSet { map(for: family, affinity: .none, shape: .mesh) }

    static let allMaps = [
        slotsV4, affinityV4, slotsV6, affinityV6, vipsV4, vipsAffinityV4, vipsV6, vipsAffinityV6, meshV4, meshV6,
    ]

    /// Table, the base layout, the service maps, sets and base chains; idempotent.
    static var layout: Batch {
        var batch = PierTable.layout
        for set in allMaps + [meshSourceV4, hairpinV4, hairpinV6] { batch.add(set) }
        batch.add(prerouting)
        batch.add(output)
        return batch
    }

    /// The slot lookups, the mesh and the masquerades, added once per host.
    static var rules: [Rule] {
        var rules: [Rule] = []
        for chain in [prerouting, output] {
            for family in IPFamily.allCases {
                for affinity in [ServiceAffinity.none, .clientIP] {
                    rules.append(slotRule(in: chain, family: family, affinity: affinity))
                }
                for affinity in [ServiceAffinity.none, .clientIP] {
                    rules.append(slotRule(in: chain, family: family, affinity: affinity, shape: .allPorts))
                }
            }
        }
        // The mesh answers connections from outside only (the host's own would need `output`,
        // where `fib daddr type local` is every destination a container can reach too).
        for family in IPFamily.allCases {
            rules.append(meshMarkRule(family: family))
            rules.append(slotRule(in: prerouting, family: family, affinity: .none, shape: .mesh))
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
        // Through an overlay bridge with a mesh source: SNAT to it (every host holds the same
        // gateway there); anywhere else: masquerade.
        var source = Rule(
            family: .inet, table: PierTable.name, chain: PierTable.postrouting.name, comment: "pier:service-mesh-source"
        )
        .markHasBits(meshMark)
        source.expressions += [
            .meta(.nfproto, into: .r1), .cmp(.eq, .r1, [IPFamily.v4.addressFamily]),
            .meta(.oifname, into: .r1), .lookup(.named(meshSourceV4.name), source: .r1, destination: .r1),
            .nat(.snat, family: .ipv4, address: .r1, port: nil),
        ]
        rules.append(source)
        rules.append(
            Rule(family: .inet, table: PierTable.name, chain: PierTable.postrouting.name, comment: "pier:service-mesh")
                .markHasBits(meshMark).masquerade())
        return rules
    }

    /// `dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 60 map @service_slots_v4`
    /// (or `jhash ip saddr mod 60` into the affinity map; `ip daddr . numgen …` into the
    /// whole-VIP maps, which keep the port; `meta l4proto . th dport . numgen …` behind
    /// `fib daddr type local` for the mesh). The concatenated key is laid out as nft lays
    /// concatenations out: an address first, then one 32-bit word per field.
    static func slotRule(in chain: Chain, family: IPFamily, affinity: ServiceAffinity, shape: KeyShape = .port)
        -> Rule
    {
        let isV4 = family == .v4
        let addressWords: UInt32 = isV4 ? 1 : 4
        let shapeName = [KeyShape.port: "", .allPorts: "-vips", .mesh: "-mesh"][shape] ?? ""
        let name = "pier:services-\(isV4 ? "v4" : "v6")\(shapeName)\(affinity == .clientIP ? "-affinity" : "")"
        var expressions: [Expression] = []
        if shape == .mesh {
            expressions += [.fib(.daddr, result: .addressType, into: .r1), .cmp(.eq, .r1, [2, 0, 0, 0])]
        }
        expressions += [.meta(.nfproto, into: .r1), .cmp(.eq, .r1, [family.addressFamily])]
        // The slot is the key's last word: after the address (none in a mesh key) and the
        // protocol and port words (none in a whole-VIP key).
        let slotWord: UInt32 =
            switch shape {
            case .port: addressWords + 2
            case .allPorts: addressWords
            case .mesh: 2
            }
        if affinity == .clientIP {
            // The source goes to a 16-byte register clear of the key's words (reg 2 for a
            // 4-word IPv4 key, reg 3 for the 7-word IPv6 key).
            let source = Register(rawValue: isV4 ? 2 : 3)
            expressions.append(.payload(.network, offset: isV4 ? 12 : 8, length: isV4 ? 4 : 16, into: source))
            expressions += keyLoads(isV4: isV4, shape: shape)
            expressions.append(
                .jhash(
                    source: source, length: isV4 ? 4 : 16, modulus: UInt32(slotsPerPort), seed: 0,
                    into: .r32(slotWord)))
        } else {
            expressions += keyLoads(isV4: isV4, shape: shape)
            expressions.append(.numgen(.random, modulus: UInt32(slotsPerPort), into: .r32(slotWord)))
        }
        expressions.append(
            .lookup(.named(map(for: family, affinity: affinity, shape: shape).name), source: .r1, destination: .r1))
        expressions.append(
            .nat(
                .dnat, family: isV4 ? .ipv4 : .ipv6, address: .r1,
                port: shape == .allPorts ? nil : .r32(addressWords)))
        return Rule(family: .inet, table: PierTable.name, chain: chain.name, expressions: expressions, comment: name)
    }

    /// The loads before the slot: `ip daddr . meta l4proto . th dport`, `ip daddr`, or
    /// `meta l4proto . th dport`.
    private static func keyLoads(isV4: Bool, shape: KeyShape) -> [Expression] {
        let address = Expression.payload(.network, offset: isV4 ? 16 : 24, length: isV4 ? 4 : 16, into: .r1)
        let addressWords: UInt32 = isV4 ? 1 : 4
        switch shape {
        case .port:
            return [
                address, .meta(.l4proto, into: .r32(addressWords)),
                .payload(.transport, offset: 2, length: 2, into: .r32(addressWords + 1)),
            ]
        case .allPorts:
            return [address]
        case .mesh:
            return [.meta(.l4proto, into: .r32(0)), .payload(.transport, offset: 2, length: 2, into: .r32(1))]
        }
    }

    /// `fib daddr type local meta l4proto . th dport . 0 @service_mesh_v4 meta mark set meta mark
    /// | 0x02000000`: a connection the mesh is about to DNAT gets the mark its masquerade needs
    /// (slot 0 exists for every published mesh port).
    static func meshMarkRule(family: IPFamily) -> Rule {
        var rule = Rule(
            family: .inet, table: PierTable.name, chain: prerouting.name,
            expressions: [
                .fib(.daddr, result: .addressType, into: .r1), .cmp(.eq, .r1, [2, 0, 0, 0]),
                .meta(.nfproto, into: .r1), .cmp(.eq, .r1, [family.addressFamily]),
            ] + keyLoads(isV4: family == .v4, shape: .mesh) + [
                .immediateData([0, 0, 0, 0], into: .r32(2)),
                .lookup(.named(map(for: family, affinity: .none, shape: .mesh).name), source: .r1),
            ],
            comment: "pier:services-\(family == .v4 ? "v4" : "v6")-mesh-mark")
        rule = rule.setMarkBits(meshMark)
        return rule
    }

    public let client: NFTablesClient

    public init(client: NFTablesClient) { self.client = client }

    /// Makes `vip` answer on `ports` with `members` in one generation-checked batch: each
    /// port's slots (replaced if the service had them, in either map) and the members' hairpin
    /// elements. No ports means every port, each DNATed to the same port of a member (a
    /// Swarm-style VIP). Re-publishing with another member list swaps the choice atomically,
    /// so a new connection never sees a half-updated service. Members of another family are
    /// ignored. With no members the VIP is not answered. A VIP port another service holds
    /// refuses the whole publish (`EBUSY`) and changes nothing.
    public func publish(
        service: String, vip: IPAddress, ports: [ServicePort], members: [IPAddress],
        affinity: ServiceAffinity = .none
    ) throws(FirewallError) {
        let targets = ports.isEmpty ? [SlotTarget.vip(vip)] : ports.map { SlotTarget.port(vip, $0) }
        try publish(service: service, targets: targets, family: vip.family, members: members, affinity: affinity)
    }

    /// The routing mesh: `ports` on every local address of this host reach `members` (on this
    /// host or, over the overlay, on others), masqueraded. Same rules as `publish`.
    public func publishMesh(service: String, family: IPFamily, ports: [ServicePort], members: [IPAddress])
        throws(FirewallError)
    {
        try publish(
            service: service, targets: ports.map { SlotTarget.mesh(family, $0) }, family: family, members: members,
            affinity: .none)
    }

    private func publish(
        service: String, targets: [SlotTarget], family: IPFamily, members: [IPAddress], affinity: ServiceAffinity
    ) throws(FirewallError) {
        let distinct = Self.distinct(members, family: family)
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
            for target in targets {
                for held in try heldSlots(of: target) {
                    guard held.owner == service else {
                        throw FirewallError(
                            "publish service \(service)", object: "\(target) is held by \(held.owner)", errno: EBUSY)
                    }
                    batch.deleteElements(Self.slots(of: target, members: []), from: held.map.path)
                }
            }
            batch.append(
                contentsOf: Self.publishBatch(
                    service: service, targets: targets, family: family, members: members, affinity: affinity))
            return batch
        }
    }

    /// Which maps hold `target` now, and for whom: one GET of slot 0 per map.
    private func heldSlots(of target: SlotTarget) throws(FirewallError) -> [(map: NFTSet, owner: String)] {
        var held: [(map: NFTSet, owner: String)] = []
        for map in target.maps {
            do {
                if let record = try client.element(target.key + [.mark(0)], in: map.path) {
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
        let targets = ports.isEmpty ? [SlotTarget.vip(vip)] : ports.map { SlotTarget.port(vip, $0) }
        return publishBatch(
            service: service, targets: targets, family: vip.family, members: members, affinity: affinity)
    }

    static func publishBatch(
        service: String, targets: [SlotTarget], family: IPFamily, members: [IPAddress], affinity: ServiceAffinity
    ) -> Batch {
        let members = distinct(members, family: family)
        var batch = Batch()
        guard !members.isEmpty else { return batch }
        for target in targets {
            batch.addElements(
                slots(of: target, members: members, owner: service), to: target.map(affinity: affinity).path)
        }
        batch.addElements(
            members.map { SetElement(key: [.address($0), .address($0)], comment: hairpinTag) },
            to: hairpin(for: family).path)
        return batch
    }

    /// `members` of `family`, each once, in the order given.
    static func distinct(_ members: [IPAddress], family: IPFamily) -> [IPAddress] {
        var seen = Set<IPAddress>()
        return members.filter { $0.family == family && seen.insert($0).inserted }
    }

    /// Slot `i` DNATs to member `i mod N`; with no members, the keys alone (deletes).
    static func slots(of target: SlotTarget, members: [IPAddress], owner: String? = nil) -> [SetElement] {
        (0..<slotsPerPort).map { slot in
            let key = target.key + [.mark(UInt32(slot))]
            guard !members.isEmpty else { return SetElement(key: key) }
            return SetElement(key: key, data: target.data(members[slot % members.count]), comment: owner)
        }
    }

    /// Takes `vip`'s `ports` (every port: none given) away from `service` in one
    /// generation-checked batch. Ports that are already gone, or that another service holds
    /// now, are left alone; removing twice is not an error. Hairpin elements stay until
    /// `forgetMembers` (a member may serve several services).
    public func remove(service: String, vip: IPAddress, ports: [ServicePort]) throws(FirewallError) {
        try remove(service: service, targets: ports.isEmpty ? [.vip(vip)] : ports.map { .port(vip, $0) })
    }

    /// Takes the mesh `ports` away from `service` (see `remove`).
    public func removeMesh(service: String, family: IPFamily, ports: [ServicePort]) throws(FirewallError) {
        try remove(service: service, targets: ports.map { .mesh(family, $0) })
    }

    private func remove(service: String, targets: [SlotTarget]) throws(FirewallError) {
        try client.withGenerationCheck { _ throws(FirewallError) in
            var batch = Batch()
            for target in targets {
                for held in try heldSlots(of: target) where held.owner == service {
                    batch.deleteElements(Self.slots(of: target, members: []), from: held.map.path)
                }
            }
            return batch
        }
    }

    /// The members `vip:port` DNATs to now, in slot order without repeats (inspect, tests).
    /// No port: the whole-VIP slots.
    public func members(vip: IPAddress, port: ServicePort?) throws(FirewallError) -> [IPAddress] {
        try members(of: port.map { .port(vip, $0) } ?? .vip(vip))
    }

    /// The members a mesh port DNATs to now.
    public func meshMembers(family: IPFamily, port: ServicePort) throws(FirewallError) -> [IPAddress] {
        try members(of: .mesh(family, port))
    }

    private func members(of target: SlotTarget) throws(FirewallError) -> [IPAddress] {
        var found: [IPAddress] = []
        for held in try heldSlots(of: target) {
            for slot in 0..<Self.slotsPerPort {
                guard let record = try client.element(target.key + [.mark(UInt32(slot))], in: held.map.path),
                    let dataType = held.map.dataType, let data = record.decodedData(dataType),
                    case .address(let member) = data.first
                else { continue }
                if !found.contains(member) { found.append(member) }
            }
        }
        return found
    }

    /// Mesh connections leaving through `bridge` are SNATed to `address` (replaced if set).
    /// Generation-checked: this host's `pier` and its agent may set it at the same moment.
    public func setMeshSource(bridge: String, address: IPAddress) throws(FirewallError) {
        try client.apply(Self.layout, ensuring: PierTable.rules + Self.rules)
        let key: [SetValue] = [.interfaceName(bridge)]
        try client.withGenerationCheck { _ throws(FirewallError) in
            var batch = Batch()
            var current: ElementRecord?
            do throws(FirewallError) {
                current = try client.element(key, in: Self.meshSourceV4.path)
            } catch  where error.isNotFound {
                current = nil
            }
            if let held = current {
                if held.decodedData([.ipv4Address])?.first == .address(address) { return batch }
                batch.deleteElements([SetElement(key: key)], from: Self.meshSourceV4.path)
            }
            batch.addElements(
                [SetElement(key: key, data: [.address(address)], comment: "mesh-source")], to: Self.meshSourceV4.path)
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
}

/// What a service answers on: one port of its VIP, every port of it, or a port on every local
/// address of the host (the routing mesh). Each is `slotsPerPort` elements of one map.
enum SlotTarget: CustomStringConvertible {
    case port(IPAddress, ServicePort)
    case vip(IPAddress)
    case mesh(IPFamily, ServicePort)

    var family: IPFamily {
        switch self {
        case .port(let vip, _), .vip(let vip): vip.family
        case .mesh(let family, _): family
        }
    }

    var shape: ServiceRules.KeyShape {
        switch self {
        case .port: .port
        case .vip: .allPorts
        case .mesh: .mesh
        }
    }

    /// The key without its slot.
    var key: [SetValue] {
        switch self {
        case .port(let vip, let port): [.address(vip), .inetProtocol(port.ipProtocol.rawValue), .port(port.port)]
        case .vip(let vip): [.address(vip)]
        case .mesh(_, let port): [.inetProtocol(port.ipProtocol.rawValue), .port(port.port)]
        }
    }

    func data(_ member: IPAddress) -> [SetValue] {
        switch self {
        case .port(_, let port), .mesh(_, let port): [.address(member), .port(port.targetPort)]
        case .vip: [.address(member)]
        }
    }

    func map(affinity: ServiceAffinity) -> NFTSet {
        ServiceRules.map(for: family, affinity: affinity, shape: shape)
    }

    /// The maps that may hold this target (affinity moves a service between two).
    var maps: [NFTSet] {
        shape == .mesh ? [map(affinity: .none)] : [map(affinity: .none), map(affinity: .clientIP)]
    }

    var description: String {
        switch self {
        case .port(let vip, let port): "\(vip) \(port)"
        case .vip(let vip): "\(vip) (every port)"
        case .mesh(let family, let port): "mesh \(family == .v4 ? "IPv4" : "IPv6") \(port)"
        }
    }
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

}
