import Firewall
import IPAddressing
import PierTestSupport
import Testing

/// `ct status`, prefix and `fib saddr` matches, checked against nft's own listing of the rules
/// the builder made (nft --debug=netlink shows the same expressions for these texts).
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct RuleBuilderAdditionsTests {
    @Test func ctStatusPrefixAndFibSourceRulesListAsNftWritesThem() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try NFTablesClient(namespace: .open(path: host.path))
            let sameBridge = NFTSet(
                family: .inet, table: "t", name: "sb", keyType: [.interfaceName, .interfaceName])
            let post = Chain(
                family: .inet, table: "t", name: "post",
                base: BaseChainSpec(type: .nat, hook: .postrouting, priority: ChainPriority.srcnat))
            var setup = Batch()
            setup.add(Table(family: .inet, name: "t"))
            setup.add(sameBridge)
            setup.add(post)
            let loopback = try #require(IPPrefix("127.0.0.0/8"))
            let v6 = try #require(IPPrefix("fd00::/8"))
            let rules = [
                Rule(family: .inet, table: "t", chain: "post", comment: "a").ctStatus(.dnat)
                    .match(.ipSource, prefix: loopback).masquerade(),
                Rule(family: .inet, table: "t", chain: "post", comment: "b").ctStatus(.dnat)
                    .match(.iifname, .eq, .interfaceName(""))
                    .match([.oifname, .oifname], inSet: "sb").fibSourceIsLocal(negated: true).masquerade(),
                Rule(family: .inet, table: "t", chain: "post", comment: "c")
                    .match(.ip6Destination, prefix: v6, negated: true).masquerade(),
            ]
            #expect(try nft.apply(setup, ensuring: rules).count == 3)
            let text = try host.mustRun(["nft", "list", "chain", "inet", "t", "post"]).stdout
            #expect(text.contains("ct status dnat ip saddr 127.0.0.0/8 masquerade comment \"a\""), "\(text)")
            #expect(text.contains("oifname . oifname @sb fib saddr type != local masquerade comment \"b\""), "\(text)")
            #expect(text.contains("ip6 daddr != fd00::/8 masquerade comment \"c\""), "\(text)")
        }
    }
}
