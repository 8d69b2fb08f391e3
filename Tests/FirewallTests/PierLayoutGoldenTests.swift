import Firewall
import IPAddressing
import NetlinkCore
import PierTables
import Testing

/// The whole nftables layout PierTables plans, pinned as text: a network attached, ports
/// published (with snat and masqAll) and a container port spoof-checked, each against an
/// empty fake kernel, so every batch carries the full layout. Any change to the tables,
/// chains, sets, maps or rules shows up here as a diff of `expected`. No root needed.
struct PierLayoutGoldenTests {
    /// A kernel with no ruleset: generation 1, empty dumps, ACKs for everything else.
    private func emptyKernel() -> RecordingTransport {
        let kernel = RecordingTransport()
        let pid = kernel.portID
        kernel.responder = { request in
            // NFT_MSG_GETGEN (16) -> NFT_MSG_NEWGEN (15) with NFTA_GEN_ID, then the ACK.
            guard request.count > 5, request[5] == 10, request[4] == 16 else { return nil }
            let sequence = RecordingTransport.firstSequence(of: request)
            return [
                nfnlMessage(type: nftType(15), flags: 0, sequence: sequence, portID: pid, family: 0, [.be32(1, 1)])
                    + RecordingTransport.errorReply(sequence: sequence, errno: 0, portID: pid)
            ]
        }
        return kernel
    }

    /// What `step` committed, one block per object, leaving out blocks an earlier step
    /// already showed (the fake keeps no state, so every step sends the layout again).
    private func render(
        _ kernel: RecordingTransport, seen: inout Set<[String]>, _ step: () throws -> Void
    ) throws -> [String] {
        kernel.sent = []
        try step()
        let blocks = LayoutRendering.batches(kernel.sent).flatMap(LayoutRendering.render)
        let new = blocks.filter { !seen.contains($0) }
        seen.formUnion(blocks)
        return new.flatMap { $0 }
    }

    @Test func theInetAndBridgePierLayoutIsAsPlanned() throws {
        let kernel = emptyKernel()
        let nft = NFTablesClient(transport: kernel, firstSequence: 1)
        var seen: Set<[String]> = []
        let ports = [
            PublishedPort(
                ipProtocol: .tcp, hostPort: 8080, hostAddress: nil, container: try #require(IPAddress("10.88.0.2")),
                containerPort: 80),
            PublishedPort(
                ipProtocol: .udp, hostPort: 5353, hostAddress: try #require(IPAddress("192.0.2.1")),
                container: try #require(IPAddress("10.88.0.2")), containerPort: 53),
        ]
        // Port publishing ensures the whole inet layout and every inet rule.
        let publishing = try render(kernel, seen: &seen) {
            try PortPublishing(client: nft).publish(ports, owner: "c1/eth0", snat: true, masqueradeAll: true)
        }
        let network = try render(kernel, seen: &seen) {
            try NetworkRules(client: nft, networkTag: "net=pier0").attach(
                bridge: "pier0", masqueradeSubnets: [try #require(IPPrefix("10.88.0.0/16"))], isolated: true,
                isInternal: true)
        }
        let spoofCheck = try render(kernel, seen: &seen) {
            try SpoofCheck(client: nft).protect(
                port: "veth1a2b3c4d", mac: try #require(MACAddress("02:42:0a:58:00:02")), owner: "c1/eth0")
        }
        let text = (["# portmap"] + publishing + ["# network"] + network + ["# spoof check"] + spoofCheck)
            .joined(separator: "\n")
        #expect(text == Self.expected, "\n\(text)")
    }

    /// Sets read `set FAMILY TABLE NAME flags F key TYPE len N [data TYPE len N]` (type numbers
    /// as nft composes them, 6 bits per concatenated field); the rest is libnftnl's own
    /// format: chains with hook and priority, rules as `nft --debug=netlink` lists their
    /// expressions, elements as key and data words with the owner comment in userdata.
    static let expected = #"""
        # portmap
        table pier inet flags 0 use 0 handle 0
        set inet pier masq_v4 flags 0x4 key 0x7 len 4
        set inet pier masq_v6 flags 0x4 key 0x8 len 16
        set inet pier isolated_bridges flags 0x0 key 0x29 len 16
        set inet pier same_bridge flags 0x0 key 0xa69 len 32
        set inet pier internal_bridges flags 0x0 key 0x29 len 16
        chain inet pier forward use 0 type filter hook forward prio 0 policy accept packets 0 bytes 0
        chain inet pier postrouting use 0 type nat hook postrouting prio 100 policy accept packets 0 bytes 0
        chain inet pier forward_mark use 0 type filter hook forward prio -300 policy accept packets 0 bytes 0
        set inet pier dnat_v4_bound flags 0x8 key 0x730d len 12 data 0x1cd len 8
        set inet pier dnat_v4 flags 0x8 key 0x30d len 8 data 0x1cd len 8
        set inet pier dnat_v6_bound flags 0x8 key 0x830d len 24 data 0x20d len 20
        set inet pier dnat_v6 flags 0x8 key 0x30d len 8 data 0x20d len 20
        set inet pier masq_all_v4 flags 0x0 key 0x7 len 4
        set inet pier masq_all_v6 flags 0x0 key 0x8 len 16
        chain inet pier published use 0
        chain inet pier prerouting use 0 type nat hook prerouting prio -100 policy accept packets 0 bytes 0
        chain inet pier output use 0 type nat hook output prio -100 policy accept packets 0 bytes 0
        rule inet pier postrouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 12 => reg 1 ]
            [ lookup reg 1 set masq_v4 ]
            [ payload load 4b @ network header + 16 => reg 1 ]
            [ lookup reg 1 set masq_v4 0x1 ]
            [ masq ]
            userdata = { \x00\x13pier:masquerade-v4\x00 }
        rule inet pier postrouting
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 8 => reg 1 ]
            [ lookup reg 1 set masq_v6 ]
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ lookup reg 1 set masq_v6 0x1 ]
            [ masq ]
            userdata = { \x00\x13pier:masquerade-v6\x00 }
        rule inet pier forward
            [ meta load iifname => reg 1 ]
            [ lookup reg 1 set isolated_bridges ]
            [ meta load oifname => reg 1 ]
            [ lookup reg 1 set isolated_bridges ]
            [ meta load iifname => reg 1 ]
            [ meta load oifname => reg 12 ]
            [ lookup reg 1 set same_bridge 0x1 ]
            [ immediate reg 0 drop ]
            userdata = { \x00\x0fpier:isolation\x00 }
        rule inet pier forward
            [ meta load iifname => reg 1 ]
            [ lookup reg 1 set internal_bridges ]
            [ meta load iifname => reg 1 ]
            [ meta load oifname => reg 12 ]
            [ lookup reg 1 set same_bridge 0x1 ]
            [ immediate reg 0 drop ]
            userdata = { \x00\x12pier:internal-out\x00 }
        rule inet pier forward
            [ meta load oifname => reg 1 ]
            [ lookup reg 1 set internal_bridges ]
            [ meta load iifname => reg 1 ]
            [ meta load oifname => reg 12 ]
            [ lookup reg 1 set same_bridge 0x1 ]
            [ immediate reg 0 drop ]
            userdata = { \x00\x11pier:internal-in\x00 }
        rule inet pier forward_mark
            [ meta load iifname => reg 1 ]
            [ meta load iifname => reg 12 ]
            [ lookup reg 1 set same_bridge ]
            [ meta load mark => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0xfeffffff ) ^ 0x01000000 ]
            [ meta set mark with reg 1 ]
            userdata = { \x00\x16pier:mark-from-bridge\x00 }
        rule inet pier forward_mark
            [ meta load oifname => reg 1 ]
            [ meta load oifname => reg 12 ]
            [ lookup reg 1 set same_bridge ]
            [ ct load state => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load mark => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0xfeffffff ) ^ 0x01000000 ]
            [ meta set mark with reg 1 ]
            userdata = { \x00\x1cpier:mark-replies-to-bridge\x00 }
        rule inet pier forward_mark
            [ meta load oifname => reg 1 ]
            [ meta load oifname => reg 12 ]
            [ lookup reg 1 set same_bridge ]
            [ ct load status => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load mark => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0xfeffffff ) ^ 0x01000000 ]
            [ meta set mark with reg 1 ]
            userdata = { \x00\x1epier:mark-published-to-bridge\x00 }
        set inet pier __set%d flags 0x3 key 0xc len 1 size 3
        elements __set%d pier 0
            element 00000006  : 0 [end]
            element 00000011  : 0 [end]
            element 00000084  : 0 [end]
        rule inet pier published
            [ meta load l4proto => reg 1 ]
            [ lookup reg 1 set __set%d ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 16 => reg 1 ]
            [ meta load l4proto => reg 9 ]
            [ payload load 2b @ transport header + 2 => reg 10 ]
            [ lookup reg 1 set dnat_v4_bound dreg 1 ]
            [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
            userdata = { \x00\x16pier:publish-v4-bound\x00 }
        set inet pier __set%d flags 0x3 key 0xc len 1 size 3
        elements __set%d pier 0
            element 00000006  : 0 [end]
            element 00000011  : 0 [end]
            element 00000084  : 0 [end]
        rule inet pier published
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ meta load l4proto => reg 1 ]
            [ lookup reg 1 set __set%d ]
            [ meta load l4proto => reg 1 ]
            [ payload load 2b @ transport header + 2 => reg 9 ]
            [ lookup reg 1 set dnat_v4 dreg 1 ]
            [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
            userdata = { \x00\x10pier:publish-v4\x00 }
        set inet pier __set%d flags 0x3 key 0xc len 1 size 3
        elements __set%d pier 0
            element 00000006  : 0 [end]
            element 00000011  : 0 [end]
            element 00000084  : 0 [end]
        rule inet pier published
            [ meta load l4proto => reg 1 ]
            [ lookup reg 1 set __set%d ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ meta load l4proto => reg 12 ]
            [ payload load 2b @ transport header + 2 => reg 13 ]
            [ lookup reg 1 set dnat_v6_bound dreg 1 ]
            [ nat dnat ip6 addr_min reg 1 proto_min reg 12 ]
            userdata = { \x00\x16pier:publish-v6-bound\x00 }
        set inet pier __set%d flags 0x3 key 0xc len 1 size 3
        elements __set%d pier 0
            element 00000006  : 0 [end]
            element 00000011  : 0 [end]
            element 00000084  : 0 [end]
        rule inet pier published
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ meta load l4proto => reg 1 ]
            [ lookup reg 1 set __set%d ]
            [ meta load l4proto => reg 1 ]
            [ payload load 2b @ transport header + 2 => reg 9 ]
            [ lookup reg 1 set dnat_v6 dreg 1 ]
            [ nat dnat ip6 addr_min reg 1 proto_min reg 12 ]
            userdata = { \x00\x10pier:publish-v6\x00 }
        rule inet pier prerouting
            [ fib daddr type => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ immediate reg 0 jump -> published ]
            userdata = { \x00\x0dpier:publish\x00 }
        rule inet pier output
            [ fib daddr type => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ immediate reg 0 jump -> published ]
            userdata = { \x00\x0dpier:publish\x00 }
        rule inet pier postrouting
            [ ct load status => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 16 => reg 1 ]
            [ lookup reg 1 set masq_all_v4 ]
            [ masq ]
            userdata = { \x00\x19pier:publish-masq-all-v4\x00 }
        rule inet pier postrouting
            [ ct load status => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x0000000a ]
            [ payload load 16b @ network header + 24 => reg 1 ]
            [ lookup reg 1 set masq_all_v6 ]
            [ masq ]
            userdata = { \x00\x19pier:publish-masq-all-v6\x00 }
        rule inet pier postrouting
            [ ct load status => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load iifname => reg 1 ]
            [ meta load oifname => reg 12 ]
            [ lookup reg 1 set same_bridge ]
            [ masq ]
            userdata = { \x00\x15pier:publish-hairpin\x00 }
        rule inet pier postrouting
            [ ct load status => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load iifname => reg 1 ]
            [ cmp eq reg 1 0x00000000 0x00000000 0x00000000 0x00000000 ]
            [ meta load oifname => reg 1 ]
            [ meta load oifname => reg 12 ]
            [ lookup reg 1 set same_bridge ]
            [ fib saddr type => reg 1 ]
            [ cmp neq reg 1 0x00000002 ]
            [ masq ]
            userdata = { \x00\x1dpier:publish-hairpin-bridged\x00 }
        rule inet pier postrouting
            [ ct load status => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]
            [ cmp neq reg 1 0x00000000 ]
            [ meta load nfproto => reg 1 ]
            [ cmp eq reg 1 0x00000002 ]
            [ payload load 4b @ network header + 12 => reg 1 ]
            [ bitwise reg 1 = ( reg 1 & 0x000000ff ) ^ 0x00000000 ]
            [ cmp eq reg 1 0x0000007f ]
            [ masq ]
            userdata = { \x00\x17pier:publish-localhost\x00 }
        elements dnat_v4_bound pier 0
            element 010200c0 00000011 0000e914  : 0200580a 00003500 0 [end]  userdata = { \x00\x08c1/eth0\x00 }
        elements dnat_v4 pier 0
            element 00000006 0000901f  : 0200580a 00005000 0 [end]  userdata = { \x00\x08c1/eth0\x00 }
        elements masq_all_v4 pier 0
            element 0200580a  : 0 [end]  userdata = { \x00\x08c1/eth0\x00 }
        # network
        elements masq_v4 pier 0
            element 0000580a  : 0 [end]  userdata = { \x00\x17net=pier0 10.88.0.0/16\x00 }
            element 0000590a  : 1 [end]
        elements same_bridge pier 0
            element 72656970 00000030 00000000 00000000 72656970 00000030 00000000 00000000  : 0 [end]  userdata = { \x00\x0anet=pier0\x00 }
        elements isolated_bridges pier 0
            element 72656970 00000030 00000000 00000000  : 0 [end]  userdata = { \x00\x0anet=pier0\x00 }
        elements internal_bridges pier 0
            element 72656970 00000030 00000000 00000000  : 0 [end]  userdata = { \x00\x0anet=pier0\x00 }
        # spoof check
        table pier bridge flags 0 use 0 handle 0
        set bridge pier spoofcheck_ports flags 0x0 key 0x29 len 16
        set bridge pier spoofcheck_allowed flags 0x0 key 0xa49 len 24
        chain bridge pier prerouting use 0 type filter hook prerouting prio -300 policy accept packets 0 bytes 0
        rule bridge pier prerouting
            [ meta load iifname => reg 1 ]
            [ lookup reg 1 set spoofcheck_ports ]
            [ meta load iifname => reg 1 ]
            [ payload load 6b @ link header + 6 => reg 12 ]
            [ lookup reg 1 set spoofcheck_allowed 0x1 ]
            [ immediate reg 0 drop ]
            userdata = { \x00\x11pier:macspoofchk\x00 }
        elements spoofcheck_ports pier 0
            element 68746576 62326131 64346333 00000000  : 0 [end]  userdata = { \x00\x08c1/eth0\x00 }
        elements spoofcheck_allowed pier 0
            element 68746576 62326131 64346333 00000000 580a4202 00000200  : 0 [end]  userdata = { \x00\x08c1/eth0\x00 }
        """#
}
