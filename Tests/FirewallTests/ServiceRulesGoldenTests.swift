import Firewall
import IPAddressing
import NetlinkCore
import Testing

@testable import PierTables

/// The exact netlink objects of services, rendered by libnftnl as `nft --debug=netlink` lists
/// them: the layout services add to `inet pier`, and what publishing one service sends. Any
/// change to them shows up here as a diff. No root needed. The rule expressions follow nft's
/// own for `dnat ip to ip daddr . meta l4proto . th dport map @m` with a `numgen random mod N`
/// (or `jhash ip saddr mod N`) field appended to the concatenation: integer keys are host
/// byte order, one 32-bit register per field after the address.
struct ServiceRulesGoldenTests {
    private func rendered(_ batch: Batch) -> String {
        let nft = NFTablesClient(transport: RecordingTransport(), firstSequence: 1)
        return LayoutRendering.batches([nft.encode(batch).datagram]).flatMap(LayoutRendering.render)
            .flatMap { $0 }.joined(separator: "\n")
    }

    private func address(_ text: String) throws -> IPAddress { try #require(IPAddress(text)) }

    @Test func theServiceLayoutIsTwoFixedSlotLookupsPerFamilyAndTheHairpinMasquerade() {
        var batch = Batch()
        for set in ServiceRules.allMaps + [ServiceRules.meshSourceV4, ServiceRules.hairpinV4, ServiceRules.hairpinV6] {
            batch.add(set)
        }
        batch.add(ServiceRules.prerouting)
        batch.add(ServiceRules.output)
        for rule in ServiceRules.rules where rule.chain != ServiceRules.output.name { batch.add(rule) }
        let text = rendered(batch)
        #expect(text == Self.expectedLayout, "\n\(text)")
        // The output chain carries the same VIP lookups as prerouting; the mesh is prerouting's only.
        let output = ServiceRules.rules.filter { $0.chain == ServiceRules.output.name }
        let prerouting = ServiceRules.rules.filter { $0.chain == ServiceRules.prerouting.name }
        #expect(output.count == 8 && output.map(\.expressions) == prerouting.prefix(8).map(\.expressions))
    }

    @Test func publishingAServiceIsSlotElementsRoundRobinOverMembersAndHairpinElements() throws {
        let batch = ServiceRules.publishBatch(
            service: "net1/web", vip: try address("10.96.0.10"),
            ports: [ServicePort(ipProtocol: .tcp, port: 80, targetPort: 8080)],
            members: [try address("10.97.1.2"), try address("10.97.2.2"), try address("10.97.3.2")], affinity: .none)
        let lines = rendered(batch).split(separator: "\n").map(String.init)
        // Slot elements: VIP . tcp . 80 . slot -> member . 8080, member = slot mod 3.
        let slots = lines.filter { $0.contains("element 0a00600a 00000006 00005000") }
        #expect(slots.count == ServiceRules.slotsPerPort)
        #expect(
            Array(slots.prefix(4)) == [
                "    element 0a00600a 00000006 00005000 00000000  : 0201610a 0000901f 0 [end]  userdata = { \\x00\\x09net1/web\\x00 }",
                "    element 0a00600a 00000006 00005000 00000001  : 0202610a 0000901f 0 [end]  userdata = { \\x00\\x09net1/web\\x00 }",
                "    element 0a00600a 00000006 00005000 00000002  : 0203610a 0000901f 0 [end]  userdata = { \\x00\\x09net1/web\\x00 }",
                "    element 0a00600a 00000006 00005000 00000003  : 0201610a 0000901f 0 [end]  userdata = { \\x00\\x09net1/web\\x00 }",
            ], "\(lines.prefix(6))")
        #expect(lines.filter { $0.hasPrefix("elements service_slots_v4 pier") }.count == 1)  // one message of 60
        #expect(
            lines.suffix(4) == [
                "elements service_hairpin_v4 pier 0",
                "    element 0201610a 0201610a  : 0 [end]  userdata = { \\x00\\x09services\\x00 }",
                "    element 0202610a 0202610a  : 0 [end]  userdata = { \\x00\\x09services\\x00 }",
                "    element 0203610a 0203610a  : 0 [end]  userdata = { \\x00\\x09services\\x00 }",
            ], "\(lines.suffix(4))")
    }

    @Test func affinityGoesToItsOwnMapAndAServiceWithoutMembersAddsNothing() throws {
        let vip = try address("fd00::10")
        let port = ServicePort(ipProtocol: .udp, port: 53)
        let batch = ServiceRules.publishBatch(
            service: "net1/dns", vip: vip, ports: [port], members: [try address("fd00::2")], affinity: .clientIP)
        let lines = rendered(batch).split(separator: "\n")
        #expect(lines.first == "elements service_affinity_v6 pier 0")
        #expect(ServiceRules.publishBatch(service: "x", vip: vip, ports: [port], members: [], affinity: .none).isEmpty)
        // Members of the other family are ignored.
        #expect(
            ServiceRules.publishBatch(
                service: "x", vip: vip, ports: [port], members: [try address("10.0.0.2")], affinity: .none
            ).isEmpty)
    }

    static let expectedLayout = #"""
        set inet pier service_slots_v4 flags 0x8 key 0x1cc353 len 16 data 0x1cd len 8
        set inet pier service_affinity_v4 flags 0x8 key 0x1cc353 len 16 data 0x1cd len 8
        set inet pier service_slots_v6 flags 0x8 key 0x20c353 len 28 data 0x20d len 20
        set inet pier service_affinity_v6 flags 0x8 key 0x20c353 len 28 data 0x20d len 20
        set inet pier service_vips_v4 flags 0x8 key 0x1d3 len 8 data 0x7 len 4
        set inet pier service_vips_affinity_v4 flags 0x8 key 0x1d3 len 8 data 0x7 len 4
        set inet pier service_vips_v6 flags 0x8 key 0x213 len 20 data 0x8 len 16
        set inet pier service_vips_affinity_v6 flags 0x8 key 0x213 len 20 data 0x8 len 16
        set inet pier service_mesh_v4 flags 0x8 key 0xc353 len 12 data 0x1cd len 8
        set inet pier service_mesh_v6 flags 0x8 key 0xc353 len 12 data 0x20d len 20
        set inet pier service_mesh_source_v4 flags 0x8 key 0x29 len 16 data 0x7 len 4
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
            [ numgen reg 11 = random mod 60 ]
            [ lookup reg 1 set service_slots_v4 dreg 1 ]
            [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
            userdata = { \x00\x11pier:services-v4\x00 }
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 12 => reg 2 ]
            [ payload load 4b @ network header + 16 => reg 1 ]
            [ meta load l4proto => reg 9 ]
            [ payload load 2b @ transport header + 2 => reg 10 ]
            [ hash reg 11 = jhash(reg 2, 4, 0x0) % mod 60 ]
            [ lookup reg 1 set service_affinity_v4 dreg 1 ]
            [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
            userdata = { \x00\x1apier:services-v4-affinity\x00 }
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 16 => reg 1 ]
            [ numgen reg 9 = random mod 60 ]
            [ lookup reg 1 set service_vips_v4 dreg 1 ]
            [ nat dnat ip addr_min reg 1 ]
            userdata = { \x00\x16pier:services-v4-vips\x00 }
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 12 => reg 2 ]
            [ payload load 4b @ network header + 16 => reg 1 ]
            [ hash reg 9 = jhash(reg 2, 4, 0x0) % mod 60 ]
            [ lookup reg 1 set service_vips_affinity_v4 dreg 1 ]
            [ nat dnat ip addr_min reg 1 ]
            userdata = { \x00\x1fpier:services-v4-vips-affinity\x00 }
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ meta load l4proto => reg 12 ]
            [ payload load 2b @ transport header + 2 => reg 13 ]
            [ numgen reg 14 = random mod 60 ]
            [ lookup reg 1 set service_slots_v6 dreg 1 ]
            [ nat dnat ip6 addr_min reg 1 proto_min reg 12 ]
            userdata = { \x00\x11pier:services-v6\x00 }
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 8 => reg 3 ]
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ meta load l4proto => reg 12 ]
            [ payload load 2b @ transport header + 2 => reg 13 ]
            [ hash reg 14 = jhash(reg 3, 16, 0x0) % mod 60 ]
            [ lookup reg 1 set service_affinity_v6 dreg 1 ]
            [ nat dnat ip6 addr_min reg 1 proto_min reg 12 ]
            userdata = { \x00\x1apier:services-v6-affinity\x00 }
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ numgen reg 12 = random mod 60 ]
            [ lookup reg 1 set service_vips_v6 dreg 1 ]
            [ nat dnat ip6 addr_min reg 1 ]
            userdata = { \x00\x16pier:services-v6-vips\x00 }
        rule inet pier service_prerouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 8 => reg 3 ]
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ hash reg 12 = jhash(reg 3, 16, 0x0) % mod 60 ]
            [ lookup reg 1 set service_vips_affinity_v6 dreg 1 ]
            [ nat dnat ip6 addr_min reg 1 ]
            userdata = { \x00\x1fpier:services-v6-vips-affinity\x00 }
        rule inet pier service_prerouting
            [ fib daddr type => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ meta load l4proto => reg 8 ]
            [ payload load 2b @ transport header + 2 => reg 9 ]
            [ immediate reg 10 0x00000000 ]
            [ lookup reg 1 set service_mesh_v4 ]
            [ meta load mark => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0xfdffffff ) ^ 0x02000000 ]
            [ meta set mark with reg 1 ]
            userdata = { \x00\x1bpier:services-v4-mesh-mark\x00 }
        rule inet pier service_prerouting
            [ fib daddr type => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ meta load l4proto => reg 8 ]
            [ payload load 2b @ transport header + 2 => reg 9 ]
            [ numgen reg 10 = random mod 60 ]
            [ lookup reg 1 set service_mesh_v4 dreg 1 ]
            [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
            userdata = { \x00\x16pier:services-v4-mesh\x00 }
        rule inet pier service_prerouting
            [ fib daddr type => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ meta load l4proto => reg 8 ]
            [ payload load 2b @ transport header + 2 => reg 9 ]
            [ immediate reg 10 0x00000000 ]
            [ lookup reg 1 set service_mesh_v6 ]
            [ meta load mark => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0xfdffffff ) ^ 0x02000000 ]
            [ meta set mark with reg 1 ]
            userdata = { \x00\x1bpier:services-v6-mesh-mark\x00 }
        rule inet pier service_prerouting
            [ fib daddr type => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ meta load l4proto => reg 8 ]
            [ payload load 2b @ transport header + 2 => reg 9 ]
            [ numgen reg 10 = random mod 60 ]
            [ lookup reg 1 set service_mesh_v6 dreg 1 ]
            [ nat dnat ip6 addr_min reg 1 proto_min reg 12 ]
            userdata = { \x00\x16pier:services-v6-mesh\x00 }
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
        rule inet pier postrouting
            [ meta load mark => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x02000000 ) ^ 0x00000000 ]
            [ cmp eq reg 1 0x02000000 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ meta load oifname => reg 1 ]
            [ lookup reg 1 set service_mesh_source_v4 dreg 1 ]
            [ nat snat ip addr_min reg 1 ]
            userdata = { \x00\x19pier:service-mesh-source\x00 }
        rule inet pier postrouting
            [ meta load mark => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x02000000 ) ^ 0x00000000 ]
            [ cmp eq reg 1 0x02000000 ]
            [ masq ]
            userdata = { \x00\x12pier:service-mesh\x00 }
        """#
}

/// What `publish` refuses before it sends anything.
struct ServiceRulesInputTests {
    @Test func moreMembersThanSlotsAreRefusedBeforeAnyRequest() throws {
        let kernel = RecordingTransport()
        let rules = ServiceRules(client: NFTablesClient(transport: kernel, firstSequence: 1))
        let members = try (1...61).map { try #require(IPAddress("10.97.0.\($0)")) }
        #expect(throws: FirewallError.self) {
            try rules.publish(
                service: "net1/big", vip: try #require(IPAddress("10.96.0.1")),
                ports: [ServicePort(ipProtocol: .tcp, port: 80)], members: members)
        }
        #expect(kernel.sent.isEmpty)
    }

    @Test func duplicateMembersCountOnce() throws {
        let member = try #require(IPAddress("10.97.0.2"))
        let other = try #require(IPAddress("10.97.0.3"))
        let slots = ServiceRules.slots(
            of: .port(try #require(IPAddress("10.96.0.1")), ServicePort(ipProtocol: .tcp, port: 80)),
            members: ServiceRules.distinct([member, member, other], family: .v4))
        let chosen = slots.compactMap { $0.data?.first }
        #expect(chosen.filter { $0 == .address(member) }.count == 30)
        #expect(chosen.filter { $0 == .address(other) }.count == 30)
    }
}
