import Foundation
import PierTestSupport
import Testing

/// Forwarded answers too big for UDP: relayed truncated to a UDP client, fetched whole from the
/// upstream over TCP for a TCP client, with the per-attempt timeout over TCP too.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ForwardingOverTCPTests {
    @Test func aTruncatedAnswerReachesUDPClientsTruncatedAndTCPClientsWhole() throws {
        try withUpstreams { world, upstream, silent in
            let network = world.network(
                subnets: ["10.89.20.0/24"], bridge: "pdnstc", names: ["upstreams": ["192.0.2.53"]])
            try world.attach(network, id: "t1", name: "tcp1")
            let t1 = try #require(world.containers["t1"])
            let whole = DNSAnswer(code: 0, addresses: TruncatingUpstream.addresses)

            // Over UDP: the upstream's truncated answer, then the client's TCP retry gets it whole.
            var retried = whole
            retried.truncatedOverUDP = true
            #expect(try world.ask(from: t1, server: "10.89.20.1", "big.example A") == retried)
            #expect(upstream.questions == ["udp big.example", "tcp big.example"])
            // Straight over TCP: forwarded over TCP, under the client's own ID (the probe checks it).
            #expect(try world.ask(from: t1, server: "10.89.20.1", "big.example A tcp") == whole)
            #expect(upstream.questions == ["udp big.example", "tcp big.example", "tcp big.example"])
            #expect(silent.questions.isEmpty)

            try world.detach("t1")
            #expect(world.serverPID == nil)
        }
    }

    @Test func aTCPUpstreamThatNeverAnswersTimesOutToTheNextThenSERVFAIL() throws {
        try withUpstreams { world, upstream, silent in
            let both = world.network(
                subnets: ["10.89.21.0/24"], bridge: "pdnsts", names: ["upstreams": ["192.0.2.54", "192.0.2.53"]])
            let deadOnly = world.network(
                subnets: ["10.89.22.0/24"], bridge: "pdnstd", names: ["upstreams": ["192.0.2.54"]])
            try world.attach(both, id: "s1", name: "slow1")
            try world.attach(deadOnly, id: "d1", name: "dead1")
            let s1 = try #require(world.containers["s1"])
            let d1 = try #require(world.containers["d1"])
            let whole = DNSAnswer(code: 0, addresses: TruncatingUpstream.addresses)

            // Consecutive forwards start at consecutive upstreams: one waits out the silent one.
            let answers = try world.ask(
                from: s1, server: "10.89.21.1", ["slow.example A tcp", "slow.example A tcp"])
            #expect(answers == [whole, whole])
            #expect(silent.questions == ["tcp slow.example"])
            #expect(upstream.questions == ["tcp slow.example", "tcp slow.example"])

            // No upstream answers: SERVFAIL once the attempt times out (before the client's 3 s).
            let start = Date()
            #expect(
                try world.ask(from: d1, server: "10.89.22.1", "gone.example A tcp")
                    == DNSAnswer(code: 2, addresses: []))
            #expect(Date().timeIntervalSince(start) >= 1.9, "SERVFAIL only after the 2 s attempt")
            #expect(silent.questions == ["tcp slow.example", "tcp gone.example"])

            try world.detach("s1")
            try world.detach("d1")
            #expect(world.serverPID == nil)
        }
    }

    /// A names world whose runtime host reaches a test host with two fake upstreams: 192.0.2.53
    /// truncates over UDP and answers whole over TCP; 192.0.2.54 never answers over TCP.
    private func withUpstreams(
        _ body: (NamesWorld, _ upstream: TruncatingUpstream, _ silent: TruncatingUpstream) throws -> Void
    ) throws {
        try withTestHosts(1) { hosts in
            try withNamesWorld { world in
                let upstreamHost = hosts[0]
                try connect(world.runtime, "up0", to: upstreamHost, "up1")
                try world.runtime.mustRun(["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"])
                try upstreamHost.mustRun(["ip", "addr", "add", "192.0.2.53/24", "dev", "up1"])
                try upstreamHost.mustRun(["ip", "addr", "add", "192.0.2.54/24", "dev", "up1"])
                let upstream = try TruncatingUpstream(in: upstreamHost, address: "192.0.2.53")
                defer { upstream.stop() }
                let silent = try TruncatingUpstream(in: upstreamHost, address: "192.0.2.54", answersOverTCP: false)
                defer { silent.stop() }
                try body(world, upstream, silent)
            }
        }
    }
}
