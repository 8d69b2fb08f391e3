import Firewall
import IPAddressing

/// The `firewall` plugin inside `inet pier` (and `bridge pier`): container addresses are
/// accepted on the forward hook, and an ingress policy keeps other container networks out.
/// Rules are fixed and added once per host; each attachment adds only elements, tagged with
/// its owner tag, and DEL removes exactly those.
///
///     table inet pier {
///       set fw_v4 { type ipv4_addr; }                     # addresses of firewalled containers
///       set fw_v6 { type ipv6_addr; }
///       set fw_ingress_v4 { type ifname . ipv4_addr; }    # "bridge . address", policy same-bridge/isolated
///       set fw_ingress_v6 { type ifname . ipv6_addr; }
///       chain fw_forward { type filter hook forward priority filter + 10;
///         ct state established,related ip daddr @fw_v4 accept
///         ct state established,related ip6 daddr @fw_v6 accept
///         oifname . ip daddr @fw_ingress_v4 iifname . iifname @same_bridge iifname . oifname != @same_bridge drop
///         oifname . ip6 daddr @fw_ingress_v6 iifname . iifname @same_bridge iifname . oifname != @same_bridge drop
///         ip saddr @fw_v4 accept
///         ip6 saddr @fw_v6 accept }
///     }
///     table bridge pier {
///       set fw_isolated_ports { type ifname; }            # host ports of isolated containers
///       chain forward { type filter hook forward priority filter;
///         oifname @fw_isolated_ports meta protocol != arp drop }
///     }
///
/// A base chain of its own, after `forward`: its accepts can never skip a drop of Pier's
/// `forward` chain (network isolation), whatever order rules are added there. Replies to
/// connections a container opened are accepted before the ingress drop, so the policy refuses
/// only connections *into* the container. "Another container network" is a bridge listed in
/// `same_bridge` (Pier's `bridge` adds every network's; this plugin adds the bridge of every
/// network with a policy, so reference bridges count too). An accept ends only this chain: a
/// drop in another table's forward chain (an iptables `FORWARD` policy drop) would still apply,
/// as nftables evaluates every base chain on the hook, so what these rules accept is also
/// marked in `forward_mark` (`markRules`), and `ForeignForwardAccept` lets marked traffic
/// through such chains.
public struct ContainerFirewall {
    public static let addressesV4 = NFTSet(
        family: .inet, table: PierTable.name, name: "fw_v4", keyType: [.ipv4Address])
    public static let addressesV6 = NFTSet(
        family: .inet, table: PierTable.name, name: "fw_v6", keyType: [.ipv6Address])
    public static let ingressV4 = NFTSet(
        family: .inet, table: PierTable.name, name: "fw_ingress_v4", keyType: [.interfaceName, .ipv4Address])
    public static let ingressV6 = NFTSet(
        family: .inet, table: PierTable.name, name: "fw_ingress_v6", keyType: [.interfaceName, .ipv6Address])
    public static let isolatedPorts = NFTSet(
        family: .bridge, table: PierTable.name, name: "fw_isolated_ports", keyType: [.interfaceName])
    public static let forward = Chain(
        family: .inet, table: PierTable.name, name: "fw_forward",
        base: BaseChainSpec(type: .filter, hook: .forward, priority: ChainPriority.filter + 10))
    public static let bridgeForward = Chain(
        family: .bridge, table: PierTable.name, name: "forward",
        base: BaseChainSpec(type: .filter, hook: .forward, priority: ChainPriority.filter))

    static func addressSet(_ family: IPFamily) -> NFTSet { family == .v4 ? addressesV4 : addressesV6 }
    static func ingressSet(_ family: IPFamily) -> NFTSet { family == .v4 ? ingressV4 : ingressV6 }

    /// Every set that holds per-attachment elements.
    static let ownedSets = [addressesV4, addressesV6, ingressV4, ingressV6, isolatedPorts]

    /// The `inet pier` layout (the rules name its `same_bridge`) with the firewall's sets and
    /// chain; idempotent.
    static var inetLayout: Batch {
        var batch = PierTable.layout
        for set in [addressesV4, addressesV6, ingressV4, ingressV6] { batch.add(set) }
        batch.add(forward)
        return batch
    }

    /// The `bridge pier` table, its isolation set and forward chain; idempotent.
    static var bridgeLayout: Batch {
        var batch = Batch()
        batch.add(SpoofCheck.table)
        batch.add(isolatedPorts)
        batch.add(bridgeForward)
        return batch
    }

    /// The forward rules, in the order they must run.
    static var inetRules: [Rule] {
        func rule(_ comment: String) -> Rule {
            Rule(family: .inet, table: PierTable.name, chain: forward.name, comment: comment)
        }
        let sameBridge = PierTable.sameBridge.name
        return [
            rule("pier:firewall-established-v4").ctState([.established, .related])
                .match([.ipDestination], inSet: addressesV4.name).verdict(.accept),
            rule("pier:firewall-established-v6").ctState([.established, .related])
                .match([.ip6Destination], inSet: addressesV6.name).verdict(.accept),
            rule("pier:firewall-ingress-v4")
                .match([.oifname, .ipDestination], inSet: ingressV4.name)
                .match([.iifname, .iifname], inSet: sameBridge)
                .match([.iifname, .oifname], inSet: sameBridge, negated: true).verdict(.drop),
            rule("pier:firewall-ingress-v6")
                .match([.oifname, .ip6Destination], inSet: ingressV6.name)
                .match([.iifname, .iifname], inSet: sameBridge)
                .match([.iifname, .oifname], inSet: sameBridge, negated: true).verdict(.drop),
            rule("pier:firewall-egress-v4").match([.ipSource], inSet: addressesV4.name).verdict(.accept),
            rule("pier:firewall-egress-v6").match([.ip6Source], inSet: addressesV6.name).verdict(.accept),
        ] + markRules
    }

    /// The traffic this plugin accepts, marked in `forward_mark` as Pier's own, so that Pier's
    /// accept rule in another table's dropping forward chain lets it through too (the bridge
    /// may be another plugin's, so `bridge`'s marks by bridge need not cover it).
    static var markRules: [Rule] {
        func rule(_ comment: String) -> Rule {
            Rule(family: .inet, table: PierTable.name, chain: PierTable.forwardMark.name, comment: comment)
        }
        let mark = PierTable.trafficMark
        return [
            rule("pier:mark-firewall-egress-v4").match([.ipSource], inSet: addressesV4.name).setMarkBits(mark),
            rule("pier:mark-firewall-egress-v6").match([.ip6Source], inSet: addressesV6.name).setMarkBits(mark),
            rule("pier:mark-firewall-established-v4").ctState([.established, .related])
                .match([.ipDestination], inSet: addressesV4.name).setMarkBits(mark),
            rule("pier:mark-firewall-established-v6").ctState([.established, .related])
                .match([.ip6Destination], inSet: addressesV6.name).setMarkBits(mark),
        ]
    }

    /// ETH_P_ARP, as `meta protocol` holds it (network byte order).
    static let arpEtherType: [UInt8] = [0x08, 0x06]

    /// Port-to-port frames towards an isolated container's port; ARP still passes, so
    /// neighbours resolve and the refusal is a clean drop rather than a resolution failure.
    static var bridgeRules: [Rule] {
        [
            Rule(family: .bridge, table: PierTable.name, chain: bridgeForward.name, comment: "pier:firewall-isolated")
                .match([.oifname], inSet: isolatedPorts.name)
                .appending(.meta(.protocol, into: .r1))
                .appending(.cmp(.neq, .r1, arpEtherType))
                .verdict(.drop)
        ]
    }

    public let client: NFTablesClient

    public init(client: NFTablesClient) { self.client = client }

    /// Ensures the layout, the rules and `attachment`'s elements. Idempotent: once everything
    /// is in place nothing is committed (read before write). Elements another attachment holds
    /// for one of these keys (a stale owner whose address IPAM gave out again) are taken over.
    public func attach(_ attachment: FirewallAttachment) throws(FirewallError) {
        let wanted = attachment.elements
        if try isAttached(attachment) {
            try ForeignForwardAccept(client: client).ensure()
            return
        }
        try client.withGenerationCheck { _ throws(FirewallError) in
            var batch = Batch()
            for (set, elements) in wanted {
                for element in elements {
                    guard let held = try client.element(element.key, in: set.path), held.comment != element.comment
                    else { continue }
                    batch.deleteElements([held], from: set.path)
                }
            }
            return batch
        }
        var changes = Batch()
        for (set, elements) in wanted { changes.addElements(elements, to: set.path) }
        if let bridge = attachment.policyBridge {
            changes.addElements(
                [SetElement(key: [.interfaceName(bridge), .interfaceName(bridge)], comment: attachment.networkTag)],
                to: PierTable.sameBridge.path)
        }
        // One transaction, `bridge pier` included when isolated: a refused ADD leaves nothing.
        var layout = Self.inetLayout
        var rules = Self.inetRules
        if attachment.isolatedPort != nil {
            layout.append(contentsOf: Self.bridgeLayout)
            rules += Self.bridgeRules
        }
        try client.apply(layout, ensuring: rules, changes: changes)
        try ForeignForwardAccept(client: client).ensure()
    }

    /// True when every rule and element `attach` would add is in place with this owner (CHECK,
    /// and ADD's read-before-write).
    public func isAttached(_ attachment: FirewallAttachment) throws(FirewallError) -> Bool {
        try missing(attachment).isEmpty
    }

    /// What `attach` would still have to add, described for a CHECK error; empty when complete.
    public func missing(_ attachment: FirewallAttachment) throws(FirewallError) -> [String] {
        var missing: [String] = []
        var chains: [(Chain, [Rule])] = [(Self.forward, Self.inetRules)]
        if attachment.isolatedPort != nil { chains.append((Self.bridgeForward, Self.bridgeRules)) }
        for (chain, rules) in chains {
            let present: Set<String>
            do {
                present = Set(
                    try client.rules(family: chain.family, table: chain.table, chain: chain.name).compactMap(\.comment))
            } catch  where error.isNotFound {
                present = []
            }
            for comment in rules.filter({ $0.chain == chain.name }).compactMap(\.comment)
            where !present.contains(comment) {
                missing.append("rule \(comment) in \(chain.family.name) \(chain.table) \(chain.name)")
            }
        }
        for (set, elements) in attachment.elements {
            for element in elements {
                let held = try client.element(element.key, in: set.path)
                if held?.comment != element.comment {
                    missing.append("\(element.key.map(\.description).joined(separator: " . ")) in \(set.path)")
                }
            }
        }
        if let bridge = attachment.policyBridge,
            try client.element([.interfaceName(bridge), .interfaceName(bridge)], in: PierTable.sameBridge.path) == nil
        {
            missing.append("\"\(bridge)\" . \"\(bridge)\" in \(PierTable.sameBridge.path)")
        }
        return missing
    }

    /// Removes `owner`'s elements and nothing else, in one generation-checked batch per
    /// table family. With `keys` (from the attachment's prevResult) only those keys are
    /// looked up; without, every firewall set is read. Missing tables or sets are not errors.
    /// Returns how many elements were removed.
    @discardableResult
    public func detach(owner: String, keys: FirewallAttachment? = nil) throws(FirewallError) -> Int {
        let removed = try detach(owner: owner, lookingUp: keys)
        // Nothing under those keys (a repeated DEL, or a prevResult that differs from ADD's):
        // make sure by reading the sets, so no element of this owner is left behind.
        if removed == 0 && keys != nil { return try detach(owner: owner, lookingUp: nil) }
        return removed
    }

    private func detach(owner: String, lookingUp keys: FirewallAttachment?) throws(FirewallError) -> Int {
        var removed = 0
        for family in [TableFamily.inet, .bridge] {
            let sets = Self.ownedSets.filter { $0.family == family }
            var familyRemoved = 0
            try client.withGenerationCheck { _ throws(FirewallError) in
                var batch = Batch()
                var count = 0
                for set in sets {
                    let owned: [ElementRecord]
                    if let keys {
                        var found: [ElementRecord] = []
                        for element in keys.elements.first(where: { $0.0 == set })?.1 ?? [] {
                            if let held = try client.element(element.key, in: set.path), held.comment == owner {
                                found.append(held)
                            }
                        }
                        owned = found
                    } else {
                        owned = try records(of: set).filter { $0.comment == owner }
                    }
                    batch.deleteElements(owned, from: set.path)
                    count += owned.count
                }
                familyRemoved = count
                return batch
            }
            removed += familyRemoved
        }
        return removed
    }

    /// Owner tags present in the firewall's sets (GC).
    public func owners() throws(FirewallError) -> Set<String> {
        var owners = Set<String>()
        for set in Self.ownedSets {
            for record in try records(of: set) {
                if let owner = record.comment { owners.insert(owner) }
            }
        }
        return owners
    }

    private func records(of set: NFTSet) throws(FirewallError) -> [ElementRecord] {
        do {
            return try client.elements(of: set.path)
        } catch  where error.isNotFound {
            return []
        }
    }
}

/// What one attachment puts into the firewall's sets.
public struct FirewallAttachment: Sendable, Hashable {
    /// Who may enter a container.
    public enum IngressPolicy: String, Sendable, CaseIterable {
        /// Everyone (no ingress elements).
        case open
        /// No connections from another container network's bridge.
        case sameBridge = "same-bridge"
        /// Neither from another container network nor from other containers on the same bridge.
        case isolated
    }

    public var owner: String
    public var networkTag: String
    public var addresses: [IPAddress]
    public var policy: IngressPolicy
    /// The bridge the container hangs off (required for same-bridge and isolated).
    public var bridge: String?
    /// The container's bridge port on the host (required for isolated).
    public var hostPort: String?

    public init(
        owner: String, networkTag: String, addresses: [IPAddress], policy: IngressPolicy, bridge: String? = nil,
        hostPort: String? = nil
    ) {
        self.owner = owner
        self.networkTag = networkTag
        self.addresses = addresses
        self.policy = policy
        self.bridge = bridge
        self.hostPort = hostPort
    }

    /// The bridge listed in `same_bridge` for a policy other than open.
    var policyBridge: String? { policy == .open ? nil : bridge }

    var isolatedPort: String? { policy == .isolated ? hostPort : nil }

    /// Per set, the elements of this attachment (sets without any are left out).
    var elements: [(NFTSet, [SetElement])] {
        var result: [(NFTSet, [SetElement])] = []
        for family in IPFamily.allCases {
            let addresses = Set(self.addresses.filter { $0.family == family }).sorted {
                $0.bytes.lexicographicallyPrecedes($1.bytes)
            }
            guard !addresses.isEmpty else { continue }
            result.append(
                (
                    ContainerFirewall.addressSet(family),
                    addresses.map { SetElement(key: [.address($0)], comment: owner) }
                ))
            if let bridge = policyBridge {
                result.append(
                    (
                        ContainerFirewall.ingressSet(family),
                        addresses.map { SetElement(key: [.interfaceName(bridge), .address($0)], comment: owner) }
                    ))
            }
        }
        if let port = isolatedPort {
            result.append((ContainerFirewall.isolatedPorts, [SetElement(key: [.interfaceName(port)], comment: owner)]))
        }
        return result
    }
}
