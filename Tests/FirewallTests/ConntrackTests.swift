import Foundation
import IPAddressing
import NetNS
import PierTestSupport
import Testing

@testable import Firewall

@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(1)))
struct ConntrackTests {
    /// `conntrack -L` lines for UDP in `host` (the independent oracle).
    /// The original destination port of every UDP entry `conntrack -L` lists: the first `dport=` of a
    /// line (the reply tuple's, later on it, is the sender's port; matching text such as `dport=5353`
    /// anywhere also matched an ephemeral port 53530-53539 there).
    private func udpDestinationPorts(in host: TestHost) throws -> [String] {
        try host.mustRun(["conntrack", "-L", "-p", "udp"]).stdout.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("dport=") }.map { String($0.dropFirst(6)) }
        }
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
            #expect(try udpDestinationPorts(in: a).contains("5353"))
            #expect(try udpDestinationPorts(in: a).contains("6000"))

            let conntrack = try ConntrackClient(namespace: NetworkNamespace.open(path: a.path))
            let entries = try conntrack.entries(family: .v4)
            #expect(entries.contains { $0.protocolNumber == 17 && $0.destinationPort == 5353 })

            // A different destination address matches nothing.
            #expect(
                try conntrack.deleteEntries(destinationPort: 5353, destinationAddress: IPAddress("10.97.0.9"))
                    == 0)
            #expect(try conntrack.deleteEntries(destinationPort: 5353, destinationAddress: IPAddress("10.97.0.2")) == 1)
            let remaining = try udpDestinationPorts(in: a)
            #expect(!remaining.contains("5353"), "after the delete: \(remaining)")
            #expect(remaining.contains("6000"))
            #expect(try conntrack.deleteEntries(destinationPort: 5353) == 0)
        }
    }
}

/// `forget` deletes exactly the entries whose original or reply tuple names an address, both
/// by the kernel's delete-by-filter and by the dump-and-delete path older kernels take.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(1)))
struct ConntrackForgetTests {
    /// Entries made with `conntrack -I`: each names 10.98.0.5 (or fd98::5) in a different
    /// place, plus two that do not name it at all.
    private func insertEntries(in host: TestHost) throws {
        let entries: [[String]] = [
            ["-s", "10.98.0.5", "-d", "10.98.0.9", "-p", "udp", "--sport", "1000", "--dport", "2000"],
            [
                "-s", "10.98.0.9", "-d", "10.98.0.5", "-p", "tcp", "--sport", "1001", "--dport", "80", "--state",
                "ESTABLISHED",
            ],
            // DNAT'd to it: only the reply source names it.
            [
                "-s", "10.98.0.7", "-d", "10.98.0.1", "-p", "udp", "--sport", "1002", "--dport", "5353",
                "--reply-src", "10.98.0.5", "--reply-dst", "10.98.0.7", "--reply-port-src", "53",
                "--reply-port-dst", "1002",
            ],
            // SNAT'd to it: only the reply destination names it.
            [
                "-s", "10.98.0.8", "-d", "10.98.0.9", "-p", "udp", "--sport", "1003", "--dport", "2000",
                "--reply-src", "10.98.0.9", "--reply-dst", "10.98.0.5", "--reply-port-src", "2000",
                "--reply-port-dst", "1003",
            ],
            [
                "-s", "10.98.0.5", "-d", "10.98.0.8", "-p", "icmp", "--icmp-type", "8", "--icmp-code", "0",
                "--icmp-id", "77",
            ],
            [
                "-s", "fd98::5", "-d", "fd98::9", "-p", "icmpv6", "--icmpv6-type", "128", "--icmpv6-code", "0",
                "--icmpv6-id", "78",
            ],
            // Unrelated: a neighbour address and a prefix look-alike.
            ["-s", "10.98.0.55", "-d", "10.98.0.9", "-p", "udp", "--sport", "1004", "--dport", "2000"],
            [
                "-s", "10.98.0.6", "-d", "10.98.0.9", "-p", "icmp", "--icmp-type", "8", "--icmp-code", "0",
                "--icmp-id", "79",
            ],
        ]
        for entry in entries { try host.mustRun(["conntrack", "-I"] + entry + ["-t", "120"]) }
    }

    static let kernelDeletesByFilter: Bool = {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return numbers.count == 2 && (numbers[0], numbers[1]) >= (6, 12)
    }()

    private func lines(in host: TestHost) throws -> [String] {
        var lines: [String] = []
        for family in ["ipv4", "ipv6"] {
            lines += try host.mustRun(["conntrack", "-L", "-f", family]).stdout.split(separator: "\n").map(String.init)
        }
        return lines
    }

    private func naming(_ address: String, _ lines: [String]) -> [String] {
        lines.filter { $0.split(separator: " ").contains { $0 == "src=\(address)" || $0 == "dst=\(address)" } }
    }

    @Test(arguments: [true, false])
    func deletesEveryEntryNamingTheAddressesAndNothingElse(byFilter: Bool) throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            try insertEntries(in: host)
            let before = try lines(in: host)
            #expect(naming("10.98.0.5", before).count == 5)
            #expect(naming("fd98::5", before).count == 1)

            let conntrack = try ConntrackClient(namespace: NetworkNamespace.open(path: host.path))
            let addresses = [try #require(IPAddress("10.98.0.5")), try #require(IPAddress("fd98::5"))]
            try conntrack.delete(matchingAny: ConntrackClient.filters(naming: addresses), byFilter: byFilter)

            let after = try lines(in: host)
            #expect(naming("10.98.0.5", after).isEmpty, "\(after)")
            #expect(naming("fd98::5", after).isEmpty, "\(after)")
            #expect(after.count == 2, "the unrelated entries stay: \(after)")
            // Kernels since 6.12 delete by filter; the fallback must not be what passed here.
            if byFilter, Self.kernelDeletesByFilter {
                #expect(try conntrack.deleteByFilter(ConntrackClient.filters(naming: addresses)))
            }
            // Nothing left to forget is no error.
            try conntrack.delete(matchingAny: ConntrackClient.filters(naming: addresses), byFilter: byFilter)
        }
    }

    /// Flows to one port of one protocol (portmap's stale UDP entries), without reading the table.
    @Test(arguments: [true, false])
    func deletesTheFlowsToOnePortOnly(byFilter: Bool) throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            for (proto, port) in [("udp", "5353"), ("udp", "6000"), ("tcp", "5353")] {
                var entry = ["conntrack", "-I", "-s", "10.98.0.7", "-d", "10.98.0.1", "-p", proto, "--sport", "1000"]
                entry += ["--dport", port, "-t", "120"] + (proto == "tcp" ? ["--state", "ESTABLISHED"] : [])
                try host.mustRun(entry)
            }
            let conntrack = try ConntrackClient(namespace: NetworkNamespace.open(path: host.path))
            try conntrack.delete(
                matchingAny: [.init(family: .v4, protocolNumber: 17, destinationPort: 5353)], byFilter: byFilter)
            let after = try lines(in: host)
            #expect(!after.contains { $0.hasPrefix("udp") && $0.contains("dport=5353") }, "\(after)")
            #expect(after.contains { $0.hasPrefix("udp") && $0.contains("dport=6000") }, "\(after)")
            #expect(after.contains { $0.hasPrefix("tcp") && $0.contains("dport=5353") }, "\(after)")
        }
    }
}
