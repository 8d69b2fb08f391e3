import Firewall
import Foundation
import PierTestSupport
import Testing

@testable import PierTables

/// Pier's one rule in other tables' dropping forward chains, against the kernel of a test host,
/// with iptables-nft and nft as the oracles.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ForeignForwardAcceptTests {
    @Test func goesIntoEveryDroppingForwardChainOnceEvenWhenRaced() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            try host.mustRun(["iptables-nft", "-P", "FORWARD", "DROP"])
            try host.mustRun(["iptables-nft", "-A", "FORWARD", "-i", "eth9", "-j", "ACCEPT"])
            try host.mustRun([
                "nft",
                "add table inet filter; "
                    + "add chain inet filter forward { type filter hook forward priority 0; policy accept; }; "
                    + "add rule inet filter forward iifname \"eth8\" accept; "
                    + "add rule inet filter forward counter reject; "
                    // Neither drops by default: left alone.
                    + "add chain inet filter open { type filter hook forward priority 5; policy accept; }; "
                    + "add rule inet filter open counter drop comment \"not last\"; "
                    + "add rule inet filter open accept; "
                    + "add chain inet filter input { type filter hook input priority 0; policy drop; }",
            ])
            // Eight processes' worth of clients at once: the generation check lets one insert.
            let group = DispatchGroup()
            let failures = Failures()
            for _ in 0..<8 {
                DispatchQueue.global().async(group: group) {
                    do {
                        try ForeignForwardAccept(client: try client(in: host)).ensure()
                    } catch {
                        failures.add("\(error)")
                    }
                }
            }
            group.wait()
            #expect(failures.list.isEmpty, "\(failures.list)")

            // Last in the policy-drop chain, where iptables reads it as its own mark match.
            let listing = try host.mustRun(["iptables-nft", "-S", "FORWARD"]).stdout
            #expect(
                listing.hasSuffix(
                    "-A FORWARD -m mark --mark 0x1000000/0x1000000 -m comment --comment \""
                        + ForeignForwardAccept.comment + "\" -j ACCEPT\n"), "\(listing)")
            #expect(listing.components(separatedBy: "0x1000000/0x1000000").count == 2)
            // Right before the final reject of the other.
            let forward = try host.nftJSON(["list", "chain", "inet", "filter", "forward"])
                .compactMap { $0["rule"] as? [String: Any] }
            #expect(forward.map { $0["comment"] as? String } == [nil, ForeignForwardAccept.comment, nil])
            let open = try host.nftJSON(["list", "chain", "inet", "filter", "open"])
                .compactMap { $0["rule"] as? [String: Any] }
            #expect(open.count == 2)

            let nft = try client(in: host)
            let survey = try ForeignForwardAccept(client: nft).survey()
            #expect(Set(survey.map(\.name)) == ["ip filter FORWARD", "inet filter forward"])
            #expect(survey.allSatisfy { $0.hasPierAccept && !$0.runsBeforeMarking })
            #expect(try ForeignForwardAccept(client: nft).ensure().isEmpty)

            // After iptables-save | iptables-restore the comment is an xt match: still Pier's.
            let saved = try host.mustRun(["iptables-nft-save"]).stdout
            try host.mustRun(["iptables-nft-restore"], stdin: saved)
            #expect(try ForeignForwardAccept(client: nft).ensure().isEmpty)
            #expect(try ForeignForwardAccept(client: nft).survey().allSatisfy(\.hasPierAccept))

            // Without Pier's marking chain (no inet pier here), reconcile takes the rules out.
            try ForeignForwardAccept(client: nft).reconcile()
            #expect(try ForeignForwardAccept(client: nft).survey().allSatisfy { !$0.hasPierAccept })
            #expect(try host.mustRun(["iptables-nft", "-S", "FORWARD"]).stdout.contains("mark") == false)
            #expect(
                try host.nftJSON(["list", "chain", "inet", "filter", "forward"]).count(where: { $0["rule"] != nil })
                    == 2)
            #expect(try ForeignForwardAccept(client: nft).ensure().count == 2)
            #expect(try ForeignForwardAccept(client: nft).removeAll() == 2)
            #expect(try ForeignForwardAccept(client: nft).removeAll() == 0)
        }
    }

    @Test func aChainBeforeTheMarkingChainIsNamed() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            try host.mustRun([
                "nft",
                "add table ip early; add chain ip early forward_early { type filter hook forward priority -400; policy drop; }",
            ])
            let survey = try ForeignForwardAccept(client: try client(in: host)).survey()
            #expect(survey.count == 1 && survey[0].runsBeforeMarking && survey[0].drops == .policyDrop)
        }
    }
}

private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ item: String) { lock.withLock { items.append(item) } }
    var list: [String] { lock.withLock { items } }
}

/// Which rules read back count as Pier's accept rule, and which final rules drop everything:
/// decisions on `RuleRecord`s alone, no kernel needed.
struct ForeignRuleRecognitionTests {
    private func record(
        _ names: [String], verdict: Verdict? = nil, markBits: UInt32? = nil, comment: String? = nil
    ) -> RuleRecord {
        RuleRecord(
            family: .ip, table: "filter", chain: "FORWARD", handle: 1, comment: comment, expressionNames: names,
            verdict: verdict, markBits: markBits)
    }

    @Test func piersRuleIsKnownByCommentOrByExactlyItsMatch() {
        let mark = PierTable.trafficMark
        let full = ["meta", "bitwise", "cmp", "counter", "immediate"]
        #expect(ForeignForwardAccept.isPierAccept(record(full, verdict: .accept, markBits: mark)))
        // After iptables-restore: the comment is an xt match.
        let restored = ["meta", "bitwise", "cmp", "match", "counter", "immediate"]
        #expect(ForeignForwardAccept.isPierAccept(record(restored, verdict: .accept, markBits: mark)))
        #expect(ForeignForwardAccept.isPierAccept(record([], comment: ForeignForwardAccept.comment)))
        // Another bit, another verdict, or more conditions: not Pier's rule.
        #expect(!ForeignForwardAccept.isPierAccept(record(full, verdict: .accept, markBits: 0x4000)))
        #expect(!ForeignForwardAccept.isPierAccept(record(full, verdict: .drop, markBits: mark)))
        let narrower = ["meta", "cmp", "meta", "bitwise", "cmp", "immediate"]
        #expect(!ForeignForwardAccept.isPierAccept(record(narrower, verdict: .accept, markBits: mark)))
    }

    @Test func onlyAnUnconditionalDropOrRejectEndsAChainByDropping() {
        #expect(record(["counter", "immediate"], verdict: .drop).dropsEverything)
        #expect(record(["reject"]).dropsEverything)
        #expect(record(["log", "counter", "reject"]).dropsEverything)
        #expect(!record(["meta", "cmp", "immediate"], verdict: .drop).dropsEverything)
        #expect(!record(["immediate"], verdict: .jump("DOCKER-USER")).dropsEverything)
        #expect(!record(["counter"]).dropsEverything)
    }
}
