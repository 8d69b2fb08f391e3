import Firewall
import Foundation
import NetNS
import PierTestSupport
import Testing

/// `apply` leaves the layout out of the batch once every rule is in place: re-creating an
/// existing chain is an update transaction the kernel frees after an RCU grace period, which
/// the process then waits for when its socket closes. Checked on the wire (what was sent) and
/// in the kernel (`nft -j`).
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ApplyFastPathTests {
    /// Passes everything through to a real socket and keeps what was sent.
    final class RecordingTransport: NetfilterTransport {
        let inner: NetlinkSocketTransport
        var sent: [[UInt8]] = []
        init(_ inner: NetlinkSocketTransport) { self.inner = inner }
        func send(_ datagram: [UInt8]) throws(FirewallError) {
            sent.append(datagram)
            try inner.send(datagram)
        }
        func receive() throws(FirewallError) -> [UInt8] { try inner.receive() }

        /// nf_tables message numbers (the low byte of each netlink type) of every batch sent.
        var batchMessages: [UInt8] {
            sent.filter { $0.count >= 6 && $0[4] == 0x10 && $0[5] == 0x00 }.flatMap { datagram -> [UInt8] in
                var types: [UInt8] = []
                var offset = 0
                while offset + 16 <= datagram.count {
                    let length =
                        Int(datagram[offset]) | Int(datagram[offset + 1]) << 8
                        | Int(datagram[offset + 2]) << 16 | Int(datagram[offset + 3]) << 24
                    guard length >= 16 else { break }
                    if datagram[offset + 5] == 10 { types.append(datagram[offset + 4]) }
                    offset += (length + 3) & ~3
                }
                return types
            }
        }
    }

    static let newTable: UInt8 = 0
    static let newChain: UInt8 = 3
    static let newSet: UInt8 = 9
    static let newSetElement: UInt8 = 12

    @Test func onceEveryRuleIsPresentOnlyTheChangesAreSent() throws {
        try withTestHosts(1) { hosts in
            let namespace = try NetworkNamespace.open(path: hosts[0].path)
            let recorder = RecordingTransport(try NetlinkSocketTransport(namespace: namespace))
            let nft = NFTablesClient(transport: recorder)
            let rules = [PierLayout.dnatRule, PierLayout.outputDnatRule, PierLayout.masqueradeRule]

            #expect(try nft.apply(PierLayout.setup, ensuring: rules).count == 3)
            #expect(recorder.batchMessages.contains(Self.newChain))

            recorder.sent = []
            var elements = Batch()
            elements.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "c1/eth0")], to: PierLayout.dnatMap.path)
            #expect(try nft.apply(PierLayout.setup, ensuring: rules, changes: elements).isEmpty)
            let sent = recorder.batchMessages
            #expect(sent.contains(Self.newSetElement))
            #expect(!sent.contains(Self.newTable) && !sent.contains(Self.newChain) && !sent.contains(Self.newSet))

            // Nothing to change at all: nothing is committed.
            recorder.sent = []
            #expect(try nft.apply(PierLayout.setup, ensuring: rules).isEmpty)
            #expect(recorder.batchMessages.isEmpty)

            let mapElements =
                try hosts[0].nftJSON(["list", "map", "inet", "pier", "dnat4"])
                .compactMap { $0["map"] as? [String: Any] }.first?["elem"] as? [Any]
            #expect(mapElements?.count == 1)
        }
    }

    @Test func aLayoutObjectNoRuleNamesIsRecreatedWhenMissing() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            // The masquerade rule names masq4 but not dnat4: dnat4 can vanish behind the rules' back.
            try nft.apply(PierLayout.setup, ensuring: [PierLayout.masqueradeRule])
            try host.mustRun(["nft", "delete", "map", "inet", "pier", "dnat4"])

            var elements = Batch()
            elements.addElements(
                [PierLayout.mapping(.udp, 5353, to: "10.88.0.3", 53, owner: "c2/eth0")], to: PierLayout.dnatMap.path)
            #expect(try nft.apply(PierLayout.setup, ensuring: [PierLayout.masqueradeRule], changes: elements).isEmpty)

            let map = try host.nftJSON(["list", "map", "inet", "pier", "dnat4"]).compactMap {
                $0["map"] as? [String: Any]
            }
            #expect((map.first?["elem"] as? [Any])?.count == 1)
        }
    }
}
