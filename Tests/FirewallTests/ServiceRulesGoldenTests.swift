import Firewall
import IPAddressing
import NetlinkCore
import Testing

@testable import PierTables

/// The exact netlink objects of services, rendered by libnftnl as `nft --debug=netlink` lists
/// them: the layout services add to `inet pier`, and what publishing one service sends. Any
/// change to them shows up here as a diff. No root needed. The rule expressions are the ones
/// `nft --debug=netlink` shows for `meta l4proto tcp dnat ip to numgen random mod 3 map { 0 :
/// 10.97.1.2 . 8080, ... }` and `... jhash ip6 saddr mod 2 map { ... }` (anonymous map flags
/// 0xb, integer keys in host byte order); the flush of the chain (message 8) is not rendered.
struct ServiceRulesGoldenTests {
    private func rendered(_ batch: Batch) -> String {
        let nft = NFTablesClient(transport: RecordingTransport(), firstSequence: 1)
        return LayoutRendering.batches([nft.encode(batch).datagram]).flatMap(LayoutRendering.render)
            .flatMap { $0 }.joined(separator: "\n")
    }

    private func address(_ text: String) throws -> IPAddress { try #require(IPAddress(text)) }

    @Test func theServiceLayoutIsOneVerdictMapLookupPerFamilyAndTheHairpinMasquerade() {
        var batch = Batch()
        for set in [ServiceRules.mapV4, ServiceRules.mapV6, ServiceRules.hairpinV4, ServiceRules.hairpinV6] {
            batch.add(set)
        }
        batch.add(ServiceRules.prerouting)
        batch.add(ServiceRules.output)
        for rule in ServiceRules.rules where rule.chain != ServiceRules.output.name { batch.add(rule) }
        let text = rendered(batch)
        #expect(text == Self.expectedLayout, "\n\(text)")
        // The output chain carries the same lookups as prerouting.
        let output = ServiceRules.rules.filter { $0.chain == ServiceRules.output.name }
        let prerouting = ServiceRules.rules.filter { $0.chain == ServiceRules.prerouting.name }
        #expect(output.map(\.expressions) == prerouting.map(\.expressions))
    }

    @Test func publishingAServiceIsAChainWithOneRuleAVerdictElementAndHairpinElements() throws {
        let batch = ServiceRules.publishBatch(
            service: "net1/web", vip: try address("10.96.0.10"),
            ports: [ServicePort(ipProtocol: .tcp, port: 80, targetPort: 8080)],
            members: [try address("10.97.1.2"), try address("10.97.2.2"), try address("10.97.3.2")], affinity: .none)
        let text = rendered(batch)
        #expect(text == Self.expectedPublish, "\n\(text)")
        // The batch has a fixed number of operations per port, whatever else exists.
        #expect(batch.count == 5)
    }

    @Test func clientIPAffinityHashesTheSourceAddress() throws {
        let chain = ServiceRules.chain(
            service: "net1/web", vip: try address("fd00::10"), port: ServicePort(ipProtocol: .udp, port: 53))
        let rule = ServiceRules.rule(
            in: chain, service: "net1/web", port: ServicePort(ipProtocol: .udp, port: 53),
            members: [try address("fd00::2"), try address("fd00::3")], affinity: .clientIP)
        var batch = Batch()
        batch.add(rule)
        let text = rendered(batch)
        #expect(text == Self.expectedAffinityV6, "\n\(text)")
    }

    @Test func aServiceWithoutMembersDropsAndChainNamesAreStablePerServicePort() throws {
        let vip = try address("10.96.0.10")
        let port = ServicePort(ipProtocol: .tcp, port: 80)
        let chain = ServiceRules.chain(service: "net1/web", vip: vip, port: port)
        #expect(chain.name == ServiceRules.chain(service: "net1/web", vip: vip, port: port).name)
        #expect(chain.name.count == 20 && chain.name.hasPrefix("svc-"))
        #expect(chain.name != ServiceRules.chain(service: "net1/api", vip: vip, port: port).name)
        #expect(
            chain.name
                != ServiceRules.chain(service: "net1/web", vip: vip, port: ServicePort(ipProtocol: .udp, port: 80)).name
        )
        let rule = ServiceRules.rule(in: chain, service: "net1/web", port: port, members: [], affinity: .none)
        #expect(rule.expressions.last == .immediate(.drop))
    }

    static let expectedLayout = #"""
        set inet pier services_v4 flags 0x8 key 0x730d len 12 data 0xffffff00 len 0
        set inet pier services_v6 flags 0x8 key 0x830d len 24 data 0xffffff00 len 0
        set inet pier service_hairpin_v4 flags 0x0 key 0x1c7 len 8
        set inet pier service_hairpin_v6 flags 0x0 key 0x208 len 32
        chain inet pier service_prerouting use 0 type nat hook prerouting prio -101 policy accept packets 0 bytes 0
        chain inet pier service_output use 0 type nat hook output prio -101 policy accept packets 0 bytes 0
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 16 => reg 1 ]
            [ meta load l4proto => reg 9 ]
            [ payload load 2b @ transport header + 2 => reg 10 ]
            [ lookup reg 1 set services_v4 dreg 0 ]
            userdata = { \x00\x11pier:services-v4\x00 }
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ meta load l4proto => reg 12 ]
            [ payload load 2b @ transport header + 2 => reg 13 ]
            [ lookup reg 1 set services_v6 dreg 0 ]
            userdata = { \x00\x11pier:services-v6\x00 }
        rule inet pier postrouting
            [ ct load status => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 12 => reg 1 ]
            [ payload load 4b @ network header + 16 => reg 9 ]
            [ lookup reg 1 set service_hairpin_v4 ]
            [ masq ]
            userdata = { \x00\x18pier:service-hairpin-v4\x00 }
        rule inet pier postrouting
            [ ct load status => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 8 => reg 1 ]
            [ payload load 16b @ network header + 24 => reg 12 ]
            [ lookup reg 1 set service_hairpin_v6 ]
            [ masq ]
            userdata = { \x00\x18pier:service-hairpin-v6\x00 }
        """#

    static let expectedPublish = #"""
        chain inet pier svc-225ed8858fe760c0 use 0
        message 8
        set inet pier __map%d flags 0xb key 0x4 len 4 data 0x1cd len 8 size 3
        elements __map%d pier 0
            element 00000000  : 0201610a 0000901f 0 [end]
            element 00000001  : 0202610a 0000901f 0 [end]
            element 00000002  : 0203610a 0000901f 0 [end]
        rule inet pier svc-225ed8858fe760c0
            [ meta load l4proto => reg 1 ]
            [ cmp eq reg 1 0x00000006 ]
            [ numgen reg 1 = random mod 3 ]
            [ lookup reg 1 set __map%d dreg 1 ]
            [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
            userdata = { \x00\x16net1/web tcp 80->8080\x00 }
        elements services_v4 pier 0
            element 0a00600a 00000006 00005000  : goto -> svc-225ed8858fe760c0 0 [end]  userdata = { \x00\x09net1/web\x00 }
        elements service_hairpin_v4 pier 0
            element 0201610a 0201610a  : 0 [end]  userdata = { \x00\x09services\x00 }
            element 0202610a 0202610a  : 0 [end]  userdata = { \x00\x09services\x00 }
            element 0203610a 0203610a  : 0 [end]  userdata = { \x00\x09services\x00 }
        """#

    static let expectedAffinityV6 = #"""
        set inet pier __map%d flags 0xb key 0x4 len 4 data 0x20d len 20 size 2
        elements __map%d pier 0
            element 00000000  : 000000fd 00000000 00000000 02000000 00003500 0 [end]
            element 00000001  : 000000fd 00000000 00000000 03000000 00003500 0 [end]
        rule inet pier svc-a251d6faa7669ff4
            [ meta load l4proto => reg 1 ]
            [ cmp eq reg 1 0x00000011 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 8 => reg 2 ]
            [ hash reg 1 = jhash(reg 2, 16, 0x0) % mod 2 ]
            [ lookup reg 1 set __map%d dreg 1 ]
            [ nat dnat ip6 addr_min reg 1 proto_min reg 12 ]
            userdata = { \x00\x14net1/web udp 53->53\x00 }
        """#
}
