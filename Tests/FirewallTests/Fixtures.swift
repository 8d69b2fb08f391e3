import Firewall
import IPAddressing
import NetNS
import PierTestSupport

/// The Pier layout (architecture.md §5) in a form the tests share.
enum PierLayout {
    static let table = Table(family: .inet, name: "pier")
    static let prerouting = Chain(
        family: .inet, table: "pier", name: "prerouting",
        base: BaseChainSpec(type: .nat, hook: .prerouting, priority: ChainPriority.dstnat))
    static let output = Chain(
        family: .inet, table: "pier", name: "output",
        base: BaseChainSpec(type: .nat, hook: .output, priority: ChainPriority.dstnat))
    static let postrouting = Chain(
        family: .inet, table: "pier", name: "postrouting",
        base: BaseChainSpec(type: .nat, hook: .postrouting, priority: ChainPriority.srcnat))
    static let dnatMap = NFTSet(
        family: .inet, table: "pier", name: "dnat4", keyType: [.inetProtocol, .inetService],
        dataType: [.ipv4Address, .inetService])
    static let masqueradeSubnets = NFTSet(
        family: .inet, table: "pier", name: "masq4", keyType: [.ipv4Address], flags: [.interval])

    static let dnatRule = Rule(family: .inet, table: "pier", chain: "prerouting", comment: "pier:dnat4")
        .match(.l4proto, in: [.tcp, .udp, .sctp])
        .fibDestinationIsLocal()
        .dnat(.ipv4, map: "dnat4", key: [.l4proto, .transportDestinationPort])

    static let outputDnatRule = Rule(family: .inet, table: "pier", chain: "output", comment: "pier:dnat4-local")
        .match(.l4proto, in: [.tcp, .udp, .sctp])
        .fibDestinationIsLocal()
        .dnat(.ipv4, map: "dnat4", key: [.l4proto, .transportDestinationPort])

    static let masqueradeRule = Rule(family: .inet, table: "pier", chain: "postrouting", comment: "pier:masq4")
        .match([.ipSource], inSet: "masq4")
        .match([.ipDestination], inSet: "masq4", negated: true)
        .masquerade()

    static var setup: Batch {
        var batch = Batch()
        batch.add(table)
        for chain in [prerouting, output, postrouting] { batch.add(chain) }
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
