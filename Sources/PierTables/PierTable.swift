import Firewall
import IPAddressing

/// The `inet pier` table: every nftables object Pier uses, in one place. Base chains and
/// sets are created once per host (idempotently, on first use); networks and containers only
/// ever add and remove elements, each tagged with its owner, so no per-container rule exists
/// and no chain is ever flushed or rewritten.
///
///     table inet pier {
///       set masq_v4 { type ipv4_addr; flags interval; }      # subnets of ipMasq networks
///       set masq_v6 { type ipv6_addr; flags interval; }
///       set isolated_bridges { type ifname; }                # bridges of isolated networks
///       set same_bridge { type ifname . ifname; }            # "bridge . bridge" per network
///       set internal_bridges { type ifname; }                # bridges of internal networks
///       chain forward { type filter hook forward priority filter;
///         iifname @isolated_bridges oifname @isolated_bridges
///           iifname . oifname != @same_bridge drop
///         iifname @internal_bridges iifname . oifname != @same_bridge drop
///         oifname @internal_bridges iifname . oifname != @same_bridge drop }
///       chain postrouting { type nat hook postrouting priority srcnat;
///         ip saddr @masq_v4 ip daddr != @masq_v4 masquerade
///         ip6 saddr @masq_v6 ip6 daddr != @masq_v6 masquerade }
///       chain forward_mark { type filter hook forward priority raw;   # before any filter chain
///         iifname . iifname @same_bridge meta mark set meta mark | 0x01000000
///         oifname . oifname @same_bridge ct state established,related meta mark set meta mark | 0x01000000
///         oifname . oifname @same_bridge ct status dnat meta mark set meta mark | 0x01000000 }
///     }
///
/// `forward_mark` tags Pier's own forwarded traffic (from a Pier bridge; replies and published
/// ports towards one) so that the one rule Pier puts into other tables' dropping forward chains
/// (`ForeignForwardAccept`) can accept exactly that traffic and nothing else.
public enum PierTable {
    public static let name = "pier"
    public static let table = Table(family: .inet, name: name)

    public static let masqueradeV4 = NFTSet(
        family: .inet, table: name, name: "masq_v4", keyType: [.ipv4Address], flags: .interval)
    public static let masqueradeV6 = NFTSet(
        family: .inet, table: name, name: "masq_v6", keyType: [.ipv6Address], flags: .interval)
    public static let isolatedBridges = NFTSet(
        family: .inet, table: name, name: "isolated_bridges", keyType: [.interfaceName])
    public static let sameBridge = NFTSet(
        family: .inet, table: name, name: "same_bridge", keyType: [.interfaceName, .interfaceName])
    /// Bridges of `--internal` networks: nothing is routed out of them or into them.
    public static let internalBridges = NFTSet(
        family: .inet, table: name, name: "internal_bridges", keyType: [.interfaceName])

    public static let forward = Chain(
        family: .inet, table: name, name: "forward",
        base: BaseChainSpec(type: .filter, hook: .forward, priority: ChainPriority.filter))
    /// The packet-mark bit of Pier's forwarded traffic. One bit, set with `|` so other software's
    /// bits survive; clear of the bits Kubernetes (0x4000, 0x8000), Tailscale (0xff0000), Cilium
    /// (0x0f00) and wg-quick (0xca6c) use.
    public static let trafficMark: UInt32 = 0x0100_0000
    /// NF_IP_PRI_RAW: ahead of every filter chain (iptables' filter at 0, mangle at -150,
    /// firewalld at filter + 10), so the mark is set before any of them looks for it.
    public static let markPriority: Int32 = -300
    public static let forwardMark = Chain(
        family: .inet, table: name, name: "forward_mark",
        base: BaseChainSpec(type: .filter, hook: .forward, priority: markPriority))
    public static let postrouting = Chain(
        family: .inet, table: name, name: "postrouting",
        base: BaseChainSpec(type: .nat, hook: .postrouting, priority: ChainPriority.srcnat))

    static func masqueradeSet(for family: IPFamily) -> NFTSet {
        family == .v4 ? masqueradeV4 : masqueradeV6
    }

    /// Table, sets and chains; committed without EXCL, so concurrent plugins can all send it.
    static var layout: Batch {
        var batch = Batch()
        batch.add(table)
        for set in [masqueradeV4, masqueradeV6, isolatedBridges, sameBridge, internalBridges] { batch.add(set) }
        batch.add(forward)
        batch.add(postrouting)
        batch.add(forwardMark)
        return batch
    }

    /// The fixed rules, identified by their comments so they are added exactly once.
    static var rules: [Rule] {
        [
            Rule(family: .inet, table: name, chain: postrouting.name, comment: "pier:masquerade-v4")
                .match([.ipSource], inSet: masqueradeV4.name)
                .match([.ipDestination], inSet: masqueradeV4.name, negated: true)
                .masquerade(),
            Rule(family: .inet, table: name, chain: postrouting.name, comment: "pier:masquerade-v6")
                .match([.ip6Source], inSet: masqueradeV6.name)
                .match([.ip6Destination], inSet: masqueradeV6.name, negated: true)
                .masquerade(),
            Rule(family: .inet, table: name, chain: forward.name, comment: "pier:isolation")
                .match([.iifname], inSet: isolatedBridges.name)
                .match([.oifname], inSet: isolatedBridges.name)
                .match([.iifname, .oifname], inSet: sameBridge.name, negated: true)
                .verdict(.drop),
            // Routed between an internal network's own subnets (same bridge in and out) still passes.
            Rule(family: .inet, table: name, chain: forward.name, comment: "pier:internal-out")
                .match([.iifname], inSet: internalBridges.name)
                .match([.iifname, .oifname], inSet: sameBridge.name, negated: true)
                .verdict(.drop),
            Rule(family: .inet, table: name, chain: forward.name, comment: "pier:internal-in")
                .match([.oifname], inSet: internalBridges.name)
                .match([.iifname, .oifname], inSet: sameBridge.name, negated: true)
                .verdict(.drop),
            Rule(family: .inet, table: name, chain: forwardMark.name, comment: "pier:mark-from-bridge")
                .match([.iifname, .iifname], inSet: sameBridge.name)
                .setMarkBits(trafficMark),
            Rule(family: .inet, table: name, chain: forwardMark.name, comment: "pier:mark-replies-to-bridge")
                .match([.oifname, .oifname], inSet: sameBridge.name)
                .ctState([.established, .related])
                .setMarkBits(trafficMark),
            Rule(family: .inet, table: name, chain: forwardMark.name, comment: "pier:mark-published-to-bridge")
                .match([.oifname, .oifname], inSet: sameBridge.name)
                .ctStatus(.dnat)
                .setMarkBits(trafficMark),
        ]
    }
}
