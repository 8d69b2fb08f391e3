import Foundation
import PierTestSupport
import Testing

/// The portmap plugin chained after `bridge` (+`ipam`), executed as a runtime would inside a
/// "host" test host; traffic comes from an "outside" test host, from the host itself and from
/// containers on the bridge.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct PortmapTests {
    /// Hairpin takes two paths: routed (no br_netfilter) or, with bridge-nf-call-iptables=1, a
    /// DNAT back onto the same bridge that br_netfilter bridges; both must be masqueraded.
    @Test(arguments: [false, true])
    func publishedPortsAnswerFromOutsideTheHostLocalhostAndHairpinOverIPv4AndIPv6(brNetfilter: Bool) throws {
        try withTestHosts(4) { hosts in
            let world = try PortmapWorld(hosts: hosts, octet: brNetfilter ? 211 : 219)
            defer { world.cleanUp() }
            let value = brNetfilter ? "1" : "0"
            for key in ["net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"] {
                // Absent when br_netfilter is not loaded: then only the routed path exists.
                _ = try world.host.run(["sysctl", "-qw", "\(key)=\(value)"])
            }
            let (c1, c2) = (world.containers[0], world.containers[1])
            defer { try? world.detachAll() }
            let tcp = try PeerEchoServer(in: c1, port: 80)
            let udp = try PeerEchoServer(in: c1, port: 5300, udp: true)
            defer {
                tcp.stop()
                udp.stop()
            }
            let output = try world.publish(
                c1, [PortmapWorld.mapping(8080, 80), PortmapWorld.mapping(5353, 5300, "udp")])
            try #require(output.status == 0, "portmap ADD: \(output.stdout) \(output.stderr)")
            // The result is prevResult, unchanged.
            #expect(output.object["ips"] as? NSArray == world.results[c1.name]?["ips"] as? NSArray)
            try world.attach(c2)

            // From outside: the container sees the real client (DNAT only).
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 8080) == world.outsideV4)
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 5353, udp: true) == world.outsideV4)
            #expect(askPeerAddress(from: world.outside, to: world.hostV6, port: 8080) == world.outsideV6)
            #expect(askPeerAddress(from: world.outside, to: world.hostV6, port: 5353, udp: true) == world.outsideV6)
            // From the host itself, through its own addresses.
            #expect(askPeerAddress(from: world.host, to: world.hostV4, port: 8080) == world.hostV4)
            #expect(askPeerAddress(from: world.host, to: world.hostV6, port: 8080) == world.hostV6)
            // From 127.0.0.1 on the host: DNAT + masquerade to the bridge address (route_localnet).
            #expect(askPeerAddress(from: world.host, to: "127.0.0.1", port: 8080) == world.gatewayV4)
            #expect(askPeerAddress(from: world.host, to: "127.0.0.1", port: 5353, udp: true) == world.gatewayV4)
            #expect(
                try world.host.run(["sysctl", "-n", "net.ipv4.conf.\(world.bridge).route_localnet"]).stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines) == "1")
            #expect(
                try world.host.run(["sysctl", "-n", "net.ipv4.conf.up0.route_localnet"]).stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines) == "0")
            // Hairpin: another container on the bridge, and the container itself, via the host address.
            #expect(askPeerAddress(from: c2, to: world.hostV4, port: 8080) == world.gatewayV4)
            #expect(askPeerAddress(from: c2, to: world.hostV4, port: 5353, udp: true) == world.gatewayV4)
            #expect(askPeerAddress(from: c1, to: world.hostV4, port: 8080) == world.gatewayV4)
            #expect(askPeerAddress(from: c2, to: world.hostV6, port: 8080) != nil)
            // A port nobody published does not answer.
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 8081, timeout: 1) == nil)

            // The maps hold exactly this attachment's elements, tagged with it.
            let text = try world.mapText("dnat_v4")
            let c1v4 = try #require(world.address(of: c1, family: "4"))
            #expect(text.contains("tcp . 8080 comment \"net=\(world.network.name) \(c1.name)/eth0\" : \(c1v4) . 80"))
            #expect(text.contains("udp . 5353 comment \"net=\(world.network.name) \(c1.name)/eth0\" : \(c1v4) . 5300"))
            #expect(try world.elements("dnat_v6").count == 2)

            let check = try world.portmapRunner.run(
                "CHECK",
                config: world.portmapConfig(
                    previous: world.results[c1.name],
                    mappings: [PortmapWorld.mapping(8080, 80), PortmapWorld.mapping(5353, 5300, "udp")]),
                containerID: c1.name, netns: c1.path, ifname: "eth0", in: world.host)
            #expect(check.status == 0, "CHECK: \(check.stdout)")

            #expect(try world.unpublish(c1).status == 0)
            for map in dnatMaps { #expect(try world.elements(map).isEmpty, "\(map) not empty") }
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 8080, timeout: 1) == nil)
            // CHECK now notices.
            let failedCheck = try world.portmapRunner.run(
                "CHECK",
                config: world.portmapConfig(
                    previous: world.results[c1.name], mappings: [PortmapWorld.mapping(8080, 80)]),
                containerID: c1.name, netns: c1.path, ifname: "eth0", in: world.host)
            #expect(failedCheck.status != 0)
        }
    }

    @Test func hostIPBindingIsRespectedAndBoundMappingsWinOverUnboundOnes() throws {
        try withTestHosts(4) { hosts in
            let world = try PortmapWorld(hosts: hosts, octet: 212)
            defer { world.cleanUp() }
            defer { try? world.detachAll() }
            let (c1, c2) = (world.containers[0], world.containers[1])
            try world.host.mustRun(["ip", "addr", "add", "10.212.0.3/24", "dev", "up0"])
            try world.host.mustRun(["ip", "-6", "addr", "add", "fd21:212::3/64", "dev", "up0", "nodad"])
            let s1 = try PeerEchoServer(in: c1, port: 80)
            let s2 = try PeerEchoServer(in: c2, port: 80)
            defer {
                s1.stop()
                s2.stop()
            }
            // c1: only on 10.212.0.3 and fd21:212::3; c2: port 9000 on every address, 9001 only on v4.
            var output = try world.publish(
                c1,
                [
                    PortmapWorld.mapping(9000, 80, hostIP: "10.212.0.3"),
                    PortmapWorld.mapping(9002, 80, hostIP: "10.212.0.3"),
                    PortmapWorld.mapping(9000, 80, hostIP: "fd21:212::3"),
                ])
            try #require(output.status == 0, "\(output.stdout)")
            output = try world.publish(
                c2, [PortmapWorld.mapping(9000, 80), PortmapWorld.mapping(9001, 80, hostIP: "0.0.0.0")])
            try #require(output.status == 0, "\(output.stdout)")
            let c2v4 = try #require(world.address(of: c2, family: "4"))
            let c1v4 = try #require(world.address(of: c1, family: "4"))

            // Both containers answer with the client's address; the maps say who gets what, and
            // stopping c2's server below shows which one answered.
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 9000) == world.outsideV4)
            #expect(askPeerAddress(from: world.outside, to: "10.212.0.3", port: 9002) == world.outsideV4)
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 9002, timeout: 1) == nil)
            #expect(try world.mapText("dnat_v4_bound").contains("10.212.0.3 . tcp . 9000"))
            #expect(try world.mapText("dnat_v4_bound").contains(": \(c1v4) . 80"))
            #expect(try world.mapText("dnat_v4").contains("tcp . 9000 comment"))
            #expect(try world.mapText("dnat_v4").contains(": \(c2v4) . 80"))
            // 9001 bound to 0.0.0.0 is IPv4 only.
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 9001) == world.outsideV4)
            #expect(askPeerAddress(from: world.outside, to: world.hostV6, port: 9001, timeout: 1) == nil)

            // Port 9000: .3 goes to c1 (bound first), .1 to c2. Stop c2's server: .3 must still answer.
            s2.stop()
            #expect(askPeerAddress(from: world.outside, to: "10.212.0.3", port: 9000) == world.outsideV4)
            #expect(askPeerAddress(from: world.outside, to: "fd21:212::3", port: 9000) == world.outsideV6)
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 9000, timeout: 1) == nil)
            #expect(askPeerAddress(from: world.outside, to: world.hostV6, port: 9000, timeout: 1) == nil)
        }
    }

    @Test func aTakenHostPortIsRefusedWithNothingLeftBehindAndTheOwnerKeepsIt() throws {
        try withTestHosts(4) { hosts in
            let world = try PortmapWorld(hosts: hosts, octet: 213)
            defer { world.cleanUp() }
            defer { try? world.detachAll() }
            let (c1, c2) = (world.containers[0], world.containers[1])
            let server = try PeerEchoServer(in: c1, port: 80)
            defer { server.stop() }
            // c1 holds 8080 on IPv6 only; c2 asks for 8080 everywhere plus a free port.
            var output = try world.publish(c1, [PortmapWorld.mapping(8080, 80, hostIP: "::")])
            try #require(output.status == 0, "\(output.stdout)")
            output = try world.publish(c2, [PortmapWorld.mapping(7070, 80), PortmapWorld.mapping(8080, 80)])
            #expect(output.status != 0)
            let message = output.object["msg"] as? String ?? ""
            #expect(message.contains("port is already allocated"), "\(output.stdout)")
            #expect(message.contains("8080"))
            // Nothing of c2's got in, not even the free port or the free IPv4 key.
            for map in dnatMaps {
                #expect(try !world.mapText(map).contains(c2.name), "\(map) has c2's elements")
            }
            #expect(try world.elements("dnat_v6").count == 1)
            #expect(askPeerAddress(from: world.outside, to: world.hostV6, port: 8080) == world.outsideV6)
            // The runtime's DEL for the failed ADD must not touch c1's mapping.
            #expect(try world.unpublish(c2).status == 0)
            #expect(askPeerAddress(from: world.outside, to: world.hostV6, port: 8080) == world.outsideV6)
        }
    }

    @Test func twoContainersRacingForOneHostPortFromSeparateProcesses() throws {
        try withTestHosts(4) { hosts in
            let world = try PortmapWorld(hosts: hosts, octet: 214)
            defer { world.cleanUp() }
            defer { try? world.detachAll() }
            let (c1, c2) = (world.containers[0], world.containers[1])
            try world.attach(c1)
            try world.attach(c2)
            for round in 0..<6 {
                let port = 10_000 + round
                let outputs = Locked<[String: PluginOutput]>([:])
                DispatchQueue.concurrentPerform(iterations: 2) { index in
                    let container = index == 0 ? c1 : c2
                    let mappings = [PortmapWorld.mapping(port, 80), PortmapWorld.mapping(port, 53, "udp")]
                    let output = try? world.publish(container, mappings)
                    outputs.withLock { $0[container.name] = output }
                }
                let results = outputs.withLock { $0 }
                let winners = results.filter { $0.value.status == 0 }
                let losers = results.filter { $0.value.status != 0 }
                #expect(winners.count == 1 && losers.count == 1, "round \(round): \(results.mapValues(\.stdout))")
                guard let winner = winners.first?.key, let loser = losers.first else { continue }
                #expect((loser.value.object["msg"] as? String ?? "").contains("port is already allocated"))
                for map in dnatMaps {
                    let text = try world.mapText(map)
                    #expect(!text.contains("\(loser.key)/eth0"), "round \(round): loser left \(map) elements")
                }
                #expect(try world.mapText("dnat_v4").contains("\(winner)/eth0"))
                // Both DEL (the runtime DELs the loser too); the maps end up empty.
                #expect(try world.unpublish(c1).status == 0)
                #expect(try world.unpublish(c2).status == 0)
                for map in dnatMaps { #expect(try world.elements(map).isEmpty) }
            }
        }
    }

    @Test func delRemovesOnlyItsOwnElementsWorksWithoutPrevResultOrNetnsAndRepeats() throws {
        try withTestHosts(5) { hosts in
            let world = try PortmapWorld(hosts: hosts, octet: 215)
            defer { world.cleanUp() }
            defer { try? world.detachAll() }
            let (c1, c2, c3) = (world.containers[0], world.containers[1], world.containers[2])
            // Baseline: the bridge's own rules plus port publishing, before any container publishes.
            try world.attach(c1)
            var output = try world.publish(c1, [PortmapWorld.mapping(8080, 80)])
            try #require(output.status == 0, "\(output.stdout)")
            let rulesWithOne = try world.ruleCount()
            // c1 goes away (DEL with neither prevResult nor netns), c2 takes the port over.
            #expect(try world.unpublish(c1, withPrevious: false, withNetns: false).status == 0)
            output = try world.publish(c2, [PortmapWorld.mapping(8080, 80), PortmapWorld.mapping(8443, 443)])
            try #require(output.status == 0, "\(output.stdout)")
            output = try world.publish(c3, [PortmapWorld.mapping(9090, 90, "udp"), PortmapWorld.mapping(9091, 91)])
            try #require(output.status == 0, "\(output.stdout)")
            // No rule per container.
            #expect(try world.ruleCount() == rulesWithOne)
            // A repeated DEL of c1 leaves c2's 8080 alone.
            #expect(try world.unpublish(c1).status == 0)
            #expect(try world.unpublish(c1, withPrevious: false, withNetns: false).status == 0)
            let text = try world.mapText("dnat_v4")
            #expect(text.contains("tcp . 8080 comment \"net=\(world.network.name) \(c2.name)/eth0\""))
            #expect(try world.elements("dnat_v4").count == 4)
            // DEL after the container's netns is gone.
            c3.destroy()
            #expect(try world.unpublish(c3, withNetns: false).status == 0)
            #expect(try world.unpublish(c2).status == 0)
            #expect(try world.unpublish(c2).status == 0)
            for map in dnatMaps { #expect(try world.elements(map).isEmpty, "\(map) not empty") }
            #expect(try world.ruleCount() == rulesWithOne)
        }
    }

    /// libcni repeats the ADD's runtimeConfig on DEL: portmap then looks up exactly those keys
    /// (no dump of whole maps) and still removes only elements tagged with this attachment.
    @Test func delByTheMappingsKeysRemovesExactlyItsOwnElements() throws {
        try withTestHosts(4) { hosts in
            let world = try PortmapWorld(hosts: hosts, octet: 220, portmapKeys: ["masqAll": true])
            defer { world.cleanUp() }
            defer { try? world.detachAll() }
            let (c1, c2) = (world.containers[0], world.containers[1])
            let c1Mappings = [
                PortmapWorld.mapping(8080, 80), PortmapWorld.mapping(5353, 53, "udp"),
                PortmapWorld.mapping(9090, 90, hostIP: world.hostV4),
                PortmapWorld.mapping(9091, 91, hostIP: world.hostV6),
            ]
            var output = try world.publish(c1, c1Mappings)
            try #require(output.status == 0, "\(output.stdout)")
            #expect(try world.elements("dnat_v4").count == 2 && world.elements("dnat_v6").count == 2)
            #expect(try world.elements("dnat_v4_bound").count == 1 && world.elements("dnat_v6_bound").count == 1)
            let c1v4 = try #require(world.address(of: c1, family: "4"))
            #expect(
                try world.host.mustRun(["nft", "list", "set", "inet", "pier", "masq_all_v4"]).stdout.contains(c1v4))

            // DEL with the ADD's mappings: every element of c1 goes, masqAll entries included.
            #expect(try world.unpublish(c1, mappings: c1Mappings).status == 0)
            for map in dnatMaps { #expect(try world.elements(map).isEmpty, "\(map) not empty") }
            #expect(
                try !world.host.mustRun(["nft", "list", "set", "inet", "pier", "masq_all_v4"]).stdout.contains(c1v4))

            // c2 takes 8080 over; a late, repeated DEL of c1 naming 8080 (and more) leaves it alone.
            output = try world.publish(c2, [PortmapWorld.mapping(8080, 80)])
            try #require(output.status == 0, "\(output.stdout)")
            #expect(try world.unpublish(c1, mappings: c1Mappings + [PortmapWorld.mapping(7070, 70)]).status == 0)
            #expect(try world.mapText("dnat_v4").contains("\(c2.name)/eth0"))
            #expect(try world.elements("dnat_v4").count == 1 && world.elements("dnat_v6").count == 1)
            let c2v4 = try #require(world.address(of: c2, family: "4"))
            #expect(
                try world.host.mustRun(["nft", "list", "set", "inet", "pier", "masq_all_v4"]).stdout.contains(c2v4))
            // Invalid mappings on DEL fall back to finding c2's elements by its tag.
            #expect(try world.unpublish(c2, mappings: [PortmapWorld.mapping(0, 80)]).status == 0)
            for map in dnatMaps { #expect(try world.elements(map).isEmpty, "\(map) not empty") }
        }
    }

    @Test func gcRemovesStaleAttachmentsAndStatusAnswers() throws {
        try withTestHosts(4) { hosts in
            // masqAll: every connection to a published port arrives from the host's bridge address.
            let world = try PortmapWorld(hosts: hosts, octet: 217, portmapKeys: ["masqAll": true])
            defer { world.cleanUp() }
            defer { try? world.detachAll() }
            let (c1, c2) = (world.containers[0], world.containers[1])
            let server = try PeerEchoServer(in: c1, port: 80)
            defer { server.stop() }
            #expect(try world.publish(c1, [PortmapWorld.mapping(8080, 80)]).status == 0)
            #expect(try world.publish(c2, [PortmapWorld.mapping(8081, 80, "udp")]).status == 0)
            #expect(askPeerAddress(from: world.outside, to: world.hostV4, port: 8080) == world.gatewayV4)
            let c1v4 = try #require(world.address(of: c1, family: "4"))
            #expect(
                try world.host.mustRun(["nft", "list", "set", "inet", "pier", "masq_all_v4"]).stdout.contains(c1v4))
            let gc = try world.portmapRunner.run(
                "GC",
                config: world.portmap.config([
                    "cni.dev/valid-attachments": [["containerID": c2.name, "ifname": "eth0"]]
                ]),
                in: world.host)
            #expect(gc.status == 0, "\(gc.stdout)")
            #expect(try world.elements("dnat_v4").count == 1)
            #expect(try world.mapText("dnat_v4").contains(c2.name))
            #expect(try !world.mapText("dnat_v6").contains(c1.name))
            #expect(
                try !world.host.mustRun(["nft", "list", "set", "inet", "pier", "masq_all_v4"]).stdout.contains(c1v4))
            let status = try world.portmapRunner.run("STATUS", config: world.portmap.config(), in: world.host)
            #expect(status.status == 0, "\(status.stdout)")
        }
    }

    @Test func staleUDPConntrackEntriesAreRemovedOnAddAndDel() throws {
        try withTestHosts(3) { hosts in
            let world = try PortmapWorld(hosts: hosts, octet: 218)
            defer { world.cleanUp() }
            defer { try? world.detachAll() }
            let c1 = world.containers[0]
            try world.attach(c1)  // loads inet pier (nat), so the host tracks connections
            let server = try PeerEchoServer(in: c1, port: 5300, udp: true)
            defer { server.stop() }
            // A client keeps sending from one source port before the port is published: the
            // entry it creates points at the host itself and would blackhole the flow.
            let send =
                "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 40000)); "
                + "s.sendto(b'x', ('\(world.hostV4)', 5353))"
            try world.outside.mustRun(["python3", "-c", send])
            func entries() throws -> Int {
                let result = try world.host.run(["conntrack", "-L", "-p", "udp", "--dport", "5353"])
                return result.stdout.split(separator: "\n").filter { $0.contains("dport=5353") }.count
            }
            #expect(try entries() == 1)
            #expect(try world.publish(c1, [PortmapWorld.mapping(5353, 5300, "udp")]).status == 0)
            #expect(try entries() == 0)
            let ask =
                "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 40000)); "
                + "s.settimeout(2); s.sendto(b'x', ('\(world.hostV4)', 5353)); print(s.recvfrom(100)[0].decode())"
            #expect(
                try world.outside.run(["python3", "-c", ask]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                    == world.outsideV4)
            #expect(try entries() == 1)
            #expect(try world.unpublish(c1).status == 0)
            #expect(try entries() == 0)
        }
    }
}

/// A value shared between threads behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
