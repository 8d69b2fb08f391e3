import Firewall
import Foundation
import IPAddressing
import NetNS
import PierTestSupport
import Testing

@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(1)))
struct ConntrackTests {
    /// `conntrack -L` lines for UDP in `host` (the independent oracle).
    private func udpEntries(in host: TestHost) throws -> [String] {
        try host.mustRun(["conntrack", "-L", "-p", "udp"]).stdout.split(separator: "\n").map(String.init)
    }

    private func sendUDP(from host: TestHost, to address: String, port: UInt16) throws {
        try host.mustRun(["socat", "-u", "-", "UDP:\(address):\(port)"], stdin: "ping")
    }

    @Test func deletesUDPEntriesForAPublishedPortOnly() throws {
        try withTestHosts(2) { hosts in
            let (a, b) = (hosts[0], hosts[1])
            try connect(a, "a0", to: b, "b0")
            try a.mustRun(["ip", "addr", "add", "10.97.0.1/24", "dev", "a0"])
            try b.mustRun(["ip", "addr", "add", "10.97.0.2/24", "dev", "b0"])
            // Conntrack only tracks a namespace once a rule there needs it (a `ct` match).
            var setup = Batch()
            setup.add(PierLayout.table)
            setup.add(
                Chain(
                    family: .inet, table: "pier", name: "track",
                    base: BaseChainSpec(type: .filter, hook: .output, priority: ChainPriority.filter)))
            let track = Rule(family: .inet, table: "pier", chain: "track", comment: "pier:track").ctState(.new)
                .counter()
            try NFTablesClient(namespace: NetworkNamespace.open(path: a.path)).apply(setup, ensuring: [track])

            try sendUDP(from: a, to: "10.97.0.2", port: 5353)
            try sendUDP(from: a, to: "10.97.0.2", port: 6000)
            #expect(try udpEntries(in: a).contains { $0.contains("dport=5353") })
            #expect(try udpEntries(in: a).contains { $0.contains("dport=6000") })

            let conntrack = try ConntrackClient(namespace: NetworkNamespace.open(path: a.path))
            let entries = try conntrack.entries(family: .v4)
            #expect(entries.contains { $0.protocolNumber == 17 && $0.destinationPort == 5353 })

            // A different destination address matches nothing.
            #expect(
                try conntrack.deleteEntries(destinationPort: 5353, destinationAddress: IPAddress("10.97.0.9"))
                    == 0)
            #expect(try conntrack.deleteEntries(destinationPort: 5353, destinationAddress: IPAddress("10.97.0.2")) == 1)
            let remaining = try udpEntries(in: a)
            #expect(!remaining.contains { $0.contains("dport=5353") })
            #expect(remaining.contains { $0.contains("dport=6000") })
            #expect(try conntrack.deleteEntries(destinationPort: 5353) == 0)
        }
    }
}
