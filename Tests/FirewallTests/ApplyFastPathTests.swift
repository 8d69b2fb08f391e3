import Firewall
import Foundation
import NetNS
import NetlinkCore
import PierTestSupport
import Testing

/// `apply` leaves the layout out of the batch once every rule is in place: re-creating an
/// existing chain is an update transaction the kernel frees after an RCU grace period, which
/// the process then waits for when its socket closes. Checked on the wire (what was sent) and
/// in the kernel (`nft -j`).
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ApplyFastPathTests {
    /// nf_tables message numbers (the low byte of each netlink type) of every batch sent.
    static func batchMessages(_ sent: [[UInt8]]) -> [UInt8] {
        // A batch datagram starts with NFNL_MSG_BATCH_BEGIN (0x10); nf_tables is subsystem 10.
        sent.filter { $0.count >= 6 && $0[4] == 0x10 && $0[5] == 0x00 }.flatMap { datagram in
            (NetlinkMessage.split(datagram) ?? []).filter { $0.type >> 8 == 10 }.map { UInt8($0.type & 0xff) }
        }
    }

    static let newTable: UInt8 = 0
    static let newChain: UInt8 = 3
    static let newSet: UInt8 = 9
    static let newSetElement: UInt8 = 12

    @Test func onceEveryRuleIsPresentOnlyTheChangesAreSent() throws {
        try withTestHosts(1) { hosts in
            let namespace = try NetworkNamespace.open(path: hosts[0].path)
            let recorder = RecordingTransport(forwardingTo: try NetlinkSocket(.netfilter, namespace: namespace))
            let nft = NFTablesClient(transport: recorder)
            let rules = PierLayout.rules
            #expect(try nft.apply(PierLayout.setup, ensuring: rules).count == rules.count)
            #expect(Self.batchMessages(recorder.sent).contains(Self.newChain))

            recorder.sent = []
            var elements = Batch()
            elements.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "c1/eth0")], to: PierLayout.dnatMap.path)
            #expect(try nft.apply(PierLayout.setup, ensuring: rules, changes: elements).isEmpty)
            let sent = Self.batchMessages(recorder.sent)
            #expect(sent.contains(Self.newSetElement))
            #expect(!sent.contains(Self.newTable) && !sent.contains(Self.newChain) && !sent.contains(Self.newSet))

            // Nothing to change at all: nothing is committed.
            recorder.sent = []
            #expect(try nft.apply(PierLayout.setup, ensuring: rules).isEmpty)
            #expect(Self.batchMessages(recorder.sent).isEmpty)

            let mapElements =
                try hosts[0].nftJSON(["list", "map", "inet", "pier", PierLayout.dnatMap.name])
                .compactMap { $0["map"] as? [String: Any] }.first?["elem"] as? [Any]
            #expect(mapElements?.count == 1)
        }
    }

    @Test func aLayoutObjectNoRuleNamesIsRecreatedWhenMissing() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            // The masquerade rule names masq_v4 but not dnat_v4: dnat_v4 can vanish behind the
            // rules' back.
            try nft.apply(PierLayout.setup, ensuring: [PierLayout.masqueradeRule])
            try host.mustRun(["nft", "delete", "map", "inet", "pier", PierLayout.dnatMap.name])

            var elements = Batch()
            elements.addElements(
                [PierLayout.mapping(.udp, 5353, to: "10.88.0.3", 53, owner: "c2/eth0")], to: PierLayout.dnatMap.path)
            #expect(try nft.apply(PierLayout.setup, ensuring: [PierLayout.masqueradeRule], changes: elements).isEmpty)

            let map = try host.nftJSON(["list", "map", "inet", "pier", PierLayout.dnatMap.name]).compactMap {
                $0["map"] as? [String: Any]
            }
            #expect((map.first?["elem"] as? [Any])?.count == 1)
        }
    }
}
