import Foundation
import PierTestSupport
import Testing

/// Isolation between bridge networks, and masquerade to the outside, seen with real packets.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct BridgeIsolationAndNATTests {
    let helper = BridgeTests()

    @Test func networksAreIsolatedUntilIsolationIsTurnedOff() throws {
        let red = BridgeTests.network(subnet4: "10.81.0.0/24", subnet6: "fd81::/64")
        let blue = BridgeTests.network(subnet4: "10.82.0.0/24", subnet6: "fd82::/64")
        let open = BridgeTests.network(subnet4: "10.83.0.0/24", subnet6: "fd83::/64", ["isolation": false])
        defer { for network in [red, blue, open] { network.cleanUp() } }
        try withTestHosts(5) { hosts in
            let (host, r1, r2, b1, o1) = (hosts[0], hosts[1], hosts[2], hosts[3], hosts[4])
            _ = try helper.add(red, r1, on: host)
            let r2Result = try helper.add(red, r2, on: host)
            let b1Result = try helper.add(blue, b1, on: host)
            let r2v4 = try #require(BridgeTests.containerAddress(r2Result, family: "4"))
            let r2v6 = try #require(BridgeTests.containerAddress(r2Result, family: "6"))
            let b1v4 = try #require(BridgeTests.containerAddress(b1Result, family: "4"))

            // Same network: reachable. Other network: dropped by `inet pier` forward, both ways.
            #expect(r1.canPing(r2v4))
            #expect(!b1.canPing(r2v4, timeoutSeconds: 1))
            #expect(!b1.canPing(r2v6, timeoutSeconds: 1))
            #expect(!r1.canPing(b1v4, timeoutSeconds: 1))
            // The gateway of its own network still answers.
            #expect(b1.canPing("10.82.0.1"))

            // A network with isolation off reaches the isolated ones and is reached by them.
            let o1Result = try helper.add(open, o1, on: host)
            let o1v4 = try #require(BridgeTests.containerAddress(o1Result, family: "4"))
            #expect(o1.canPing(r2v4))
            #expect(b1.canPing(o1v4))

            for (network, container) in [(red, r1), (red, r2), (blue, b1), (open, o1)] {
                #expect(try helper.delete(network, container, id: container.name, on: host).status == 0)
            }
        }
    }

    @Test func masqueradedTrafficLeavesWithTheHostAddress() throws {
        let network = BridgeTests.network(subnet4: "10.84.0.0/24", subnet6: "fd84::/64")
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, outside, container) = (hosts[0], hosts[1], hosts[2])
            // The "internet": a second namespace behind the host's uplink.
            try connect(host, "uplink", to: outside, "wan")
            try host.mustRun(["ip", "addr", "add", "198.51.100.1/24", "dev", "uplink"])
            try outside.mustRun(["ip", "addr", "add", "198.51.100.2/24", "dev", "wan"])
            try host.mustRun(["ip", "-6", "addr", "add", "2001:db8:64::1/64", "dev", "uplink", "nodad"])
            try outside.mustRun(["ip", "-6", "addr", "add", "2001:db8:64::2/64", "dev", "wan", "nodad"])

            let result = try helper.add(network, container, on: host)
            let containerV4 = try #require(BridgeTests.containerAddress(result, family: "4"))
            let server = try PeerEchoServer(in: outside, port: 7001)
            defer { server.stop() }
            // The outside has no route back to 10.84.0.0/24: only masquerade makes this work.
            #expect(askPeerAddress(from: container, to: "198.51.100.2", port: 7001) == "198.51.100.1")
            #expect(askPeerAddress(from: container, to: "2001:db8:64::2", port: 7001) == "2001:db8:64::1")
            #expect(containerV4.hasPrefix("10.84.0."))

            // Without ipMasq the source is the container's own address (and gets no answer).
            let plain = BridgeTests.network(subnet4: "10.85.0.0/24", subnet6: "fd85::/64", ["ipMasq": false])
            defer { plain.cleanUp() }
            let other = try TestHost()
            defer { other.destroy() }
            _ = try helper.add(plain, other, on: host)
            #expect(askPeerAddress(from: other, to: "198.51.100.2", port: 7001, timeout: 1) == nil)

            #expect(try helper.delete(network, container, id: container.name, on: host).status == 0)
            #expect(try helper.delete(plain, other, id: other.name, on: host).status == 0)
        }
    }
}
