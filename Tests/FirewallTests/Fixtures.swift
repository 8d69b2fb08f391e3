import Firewall
import IPAddressing
import NetNS
import PierTestSupport

@testable import PierTables

/// The slice of the real `inet pier` layout (Sources/PierTables) that port publishing and
/// masquerading need, taken from PierTables itself so these tests exercise the objects and
/// rules production creates, under the names it uses:
///
///     table inet pier {
///       map dnat_v4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
///       set masq_v4 { type ipv4_addr; flags interval; }
///       chain published { meta nfproto ipv4 meta l4proto { tcp, udp, sctp }
///                         dnat ip to meta l4proto . th dport map @dnat_v4 }
///       chain prerouting { type nat hook prerouting priority dstnat; fib daddr type local jump published }
///       chain output { type nat hook output priority dstnat; fib daddr type local jump published }
///       chain postrouting { type nat hook postrouting priority srcnat;
///                           ip saddr @masq_v4 ip daddr != @masq_v4 masquerade }
///     }
///
/// The whole layout is pinned by `PierLayoutGoldenTests`.
enum PierLayout {
    static let table = PierTable.table
    static let prerouting = PortPublishing.prerouting
    static let output = PortPublishing.output
    static let postrouting = PierTable.postrouting
    static let published = PortPublishing.published
    static let dnatMap = PortPublishing.dnatV4
    static let masqueradeSubnets = PierTable.masqueradeV4

    /// `pier:publish-v4`: unbound IPv4 mappings, in the `published` chain.
    static let dnatRule = rule("pier:publish-v4", chain: published, in: PortPublishing.dnatRules)
    /// `pier:publish` in prerouting and output: local destinations go to `published`.
    static let preroutingJump = rule("pier:publish", chain: prerouting, in: PortPublishing.dnatRules)
    static let outputJump = rule("pier:publish", chain: output, in: PortPublishing.dnatRules)
    /// `pier:masquerade-v4`: traffic from a masqueraded subnet leaving it.
    static let masqueradeRule = rule("pier:masquerade-v4", chain: postrouting, in: PierTable.rules)

    static let rules = [dnatRule, preroutingJump, outputJump, masqueradeRule]

    private static func rule(_ comment: String, chain: Chain, in rules: [Rule]) -> Rule {
        guard let rule = rules.first(where: { $0.comment == comment && $0.chain == chain.name }) else {
            fatalError("PierTables has no rule \(comment) in \(chain.name)")
        }
        return rule
    }

    /// Table, base chains, `published`, the map and the set, as `PortPublishing.layout`
    /// creates them (a subset: the other maps and sets are not needed here).
    static var setup: Batch {
        var batch = Batch()
        batch.add(table)
        for chain in [prerouting, output, postrouting, published] { batch.add(chain) }
        batch.add(dnatMap)
        batch.add(masqueradeSubnets)
        return batch
    }

    static func mapping(_ proto: SetValue, _ hostPort: UInt16, to address: String, _ port: UInt16, owner: String)
        -> SetElement
    {
        SetElement(
            key: [proto, .port(hostPort)], data: [.address(IPAddress(address) ?? .v4(0)), .port(port)],
            comment: owner)
    }
}

/// A client whose socket lives in the test host's namespace.
func client(in host: TestHost) throws -> NFTablesClient {
    try NFTablesClient(namespace: NetworkNamespace.open(path: host.path))
}
