import Foundation
import PierTestSupport
import Testing

/// DEL and GC leave no conntrack entry naming the container's addresses in the host
/// namespace (where masquerade and DNAT happen), with or without prevResult, and delete
/// nothing else. `conntrack -L` is the independent oracle.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(2)))
struct ConntrackCleanupTests {
    let helper = BridgeTests()
    let portmap = PluginRunner("portmap")

    /// A host with a bridge network and an uplink to `outside`, which has no route back to the
    /// bridge subnet: only masquerade gets answers there.
    struct World {
        let host: TestHost
        let outside: TestHost
        let container: TestHost
        let network: NetworkFixture
        let hostV4 = "10.91.0.1"
        let outsideV4 = "10.91.0.2"
        let hostV6 = "fd91::1"
        let outsideV6 = "fd91::2"

        init(_ hosts: [TestHost]) throws {
            (host, outside, container) = (hosts[0], hosts[1], hosts[2])
            network = BridgeTests.network(subnet4: "10.91.1.0/24", subnet6: "fd91:1::/64")
            try connect(host, "up0", to: outside, "eth0")
            try host.mustRun(["ip", "addr", "add", "\(hostV4)/24", "dev", "up0"])
            try host.mustRun(["ip", "-6", "addr", "add", "\(hostV6)/64", "dev", "up0", "nodad"])
            try outside.mustRun(["ip", "addr", "add", "\(outsideV4)/24", "dev", "eth0"])
            try outside.mustRun(["ip", "-6", "addr", "add", "\(outsideV6)/64", "dev", "eth0", "nodad"])
        }
    }

    /// `conntrack -L` lines of `host` in which either tuple names `address`.
    static func entries(naming address: String, in host: TestHost) throws -> [String] {
        let family = address.contains(":") ? "ipv6" : "ipv4"
        return try host.mustRun(["conntrack", "-L", "-f", family]).stdout.split(separator: "\n").map(String.init)
            .filter { $0.split(separator: " ").contains { $0 == "src=\(address)" || $0 == "dst=\(address)" } }
    }

    /// Masqueraded ICMP, TCP and UDP from the container to the outside, over both families.
    func trafficOut(_ world: World) throws {
        let tcp = try PeerEchoServer(in: world.outside, port: 7101)
        let udp = try PeerEchoServer(in: world.outside, port: 7102, udp: true)
        defer {
            tcp.stop()
            udp.stop()
        }
        #expect(world.container.canPing(world.outsideV4))
        #expect(world.container.canPing(world.outsideV6))
        #expect(askPeerAddress(from: world.container, to: world.outsideV4, port: 7101) == world.hostV4)
        #expect(askPeerAddress(from: world.container, to: world.outsideV4, port: 7102, udp: true) == world.hostV4)
        #expect(askPeerAddress(from: world.container, to: world.outsideV6, port: 7101) == world.hostV6)
    }

    @Test func chainedDelForgetsMasqueradedAndDNATEntries() throws {
        try withTestHosts(3) { hosts in
            let world = try World(hosts)
            defer { world.network.cleanUp() }
            let portmapNetwork = NetworkFixture(
                name: world.network.name,
                plugin: ["type": "portmap", "capabilities": ["portMappings": true]])
            let result = try helper.add(world.network, world.container, on: world.host)
            let v4 = try #require(BridgeTests.containerAddress(result, family: "4"))
            let v6 = try #require(BridgeTests.containerAddress(result, family: "6"))
            let mappings: [[String: Any]] = [
                ["hostPort": 8080, "containerPort": 80, "protocol": "tcp"],
                ["hostPort": 5353, "containerPort": 53, "protocol": "udp"],
            ]
            let chained = portmapNetwork.config(["prevResult": result, "runtimeConfig": ["portMappings": mappings]])
            let published = try portmap.run(
                "ADD", config: chained, containerID: world.container.name, netns: world.container.path,
                ifname: "eth0", in: world.host)
            try #require(published.status == 0, "portmap ADD: \(published.stdout)")

            try trafficOut(world)
            // DNAT'd to the container through the published ports.
            let web = try PeerEchoServer(in: world.container, port: 80)
            let dns = try PeerEchoServer(in: world.container, port: 53, udp: true)
            defer {
                web.stop()
                dns.stop()
            }
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 8080) == world.outsideV4)
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 5353, udp: true) == world.outsideV4)
            // Traffic that never touched the container, which DEL must leave alone.
            #expect(world.outside.canPing(world.hostV4))

            let before = try Self.entries(naming: v4, in: world.host)
            for proto in ["icmp", "tcp", "udp"] {
                #expect(before.contains { $0.hasPrefix(proto) }, "no \(proto) entry to test with: \(before)")
            }
            #expect(before.contains { $0.contains("dport=8080") }, "no DNAT entry to test with: \(before)")
            #expect(try !Self.entries(naming: v6, in: world.host).isEmpty)

            // The chain's DEL, as libcni runs it: portmap, then bridge, both with prevResult.
            let unpublished = try portmap.run(
                "DEL", config: chained, containerID: world.container.name, netns: world.container.path,
                ifname: "eth0", in: world.host)
            #expect(unpublished.status == 0, "portmap DEL: \(unpublished.stdout)")
            let deleted = try PluginRunner("bridge").run(
                "DEL", config: world.network.config(["prevResult": result]), containerID: world.container.name,
                netns: world.container.path, ifname: "eth0", in: world.host)
            #expect(deleted.status == 0, "bridge DEL: \(deleted.stdout)")

            #expect(try Self.entries(naming: v4, in: world.host).isEmpty)
            #expect(try Self.entries(naming: v6, in: world.host).isEmpty)
            let unrelated = try Self.entries(naming: world.outsideV4, in: world.host)
            #expect(unrelated.contains { $0.hasPrefix("icmp") && $0.contains("dst=\(world.hostV4)") }, "\(unrelated)")
        }
    }

    /// Without prevResult the addresses come from the leases IPAM releases.
    @Test func delWithoutPrevResultForgetsTheReleasedAddresses() throws {
        try withTestHosts(3) { hosts in
            let world = try World(hosts)
            defer { world.network.cleanUp() }
            let result = try helper.add(world.network, world.container, on: world.host)
            let v4 = try #require(BridgeTests.containerAddress(result, family: "4"))
            let v6 = try #require(BridgeTests.containerAddress(result, family: "6"))
            try trafficOut(world)
            #expect(try !Self.entries(naming: v4, in: world.host).isEmpty)

            // No netns either: the runtime lost it.
            #expect(try helper.delete(world.network, nil, id: world.container.name, on: world.host).status == 0)
            #expect(try Self.entries(naming: v4, in: world.host).isEmpty)
            #expect(try Self.entries(naming: v6, in: world.host).isEmpty)
        }
    }

    @Test func gcForgetsTheAddressesItReleases() throws {
        try withTestHosts(3) { hosts in
            let world = try World(hosts)
            defer { world.network.cleanUp() }
            let result = try helper.add(world.network, world.container, on: world.host)
            let v4 = try #require(BridgeTests.containerAddress(result, family: "4"))
            try trafficOut(world)
            #expect(try !Self.entries(naming: v4, in: world.host).isEmpty)

            let collected = try PluginRunner("bridge").run(
                "GC", config: world.network.config(["cni.dev/valid-attachments": [[String: Any]]()]), in: world.host)
            #expect(collected.status == 0, "bridge GC: \(collected.stdout)")
            #expect(world.network.leases().isEmpty)
            #expect(try Self.entries(naming: v4, in: world.host).isEmpty)
        }
    }
}
