import Foundation
import PierTestSupport
import Synchronization
import Testing

/// The firewall plugin chained after `bridge` (+`ipam`), executed as a runtime would inside a
/// "host" test host, checked with `nft -j` and real TCP connections between containers.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct FirewallPluginTests {
    static func tag(_ world: FirewallWorld, _ network: String, _ container: TestHost) -> String {
        "net=\(world.networkName(network)) \(container.name)/eth0"
    }

    @Test func addTagsEachAttachmentsElementsAndDelRemovesExactlyThose() throws {
        try withTestHosts(4) { hosts in
            let world = try FirewallWorld(host: hosts[0], outside: hosts[1])
            defer { world.detachAll() }
            world.addNetwork("a", index: 1, ipv6: true)
            let (c1, c2) = (hosts[2], hosts[3])
            let add = try world.attach(c1, to: "a")
            try #require(add.status == 0, "firewall ADD: \(add.stdout) \(add.stderr)")
            // The result is prevResult, unchanged.
            #expect(add.object["ips"] as? NSArray == world.results[c1.name]?["ips"] as? NSArray)
            #expect(add.object["interfaces"] as? NSArray == world.results[c1.name]?["interfaces"] as? NSArray)
            try #require(try world.attach(c2, to: "a").status == 0)

            let (a1, a2) = (try #require(world.address(of: c1)), try #require(world.address(of: c2)))
            let (t1, t2) = (Self.tag(world, "a", c1), Self.tag(world, "a", c2))
            #expect(Set(try world.elements("fw_v4")) == ["\(a1) comment \"\(t1)\"", "\(a2) comment \"\(t2)\""])
            #expect(try world.elements("fw_v6").count == 2)
            // Open policy: no ingress elements, nothing in bridge pier.
            #expect(try world.elements("fw_ingress_v4").isEmpty)
            #expect(try world.elements("fw_isolated_ports", family: "bridge").isEmpty)
            // One rule set for the host, not one per container.
            let forward = try world.host.nftJSON(["list", "chain", "inet", "pier", "fw_forward"]).compactMap {
                $0["rule"] as? [String: Any]
            }
            #expect(forward.filter { ($0["comment"] as? String)?.hasPrefix("pier:firewall-") == true }.count == 6)

            // Traffic still flows both ways through the host.
            let server = try PeerEchoServer(in: c1, port: 8080)
            defer { server.stop() }
            #expect(askPeerAddress(from: world.outside, to: a1, port: 8080) == FirewallWorld.outsideV4)
            #expect(world.outside.canPing(a2))
            #expect(c2.canPing(FirewallWorld.outsideV4))

            #expect(try world.firewall("CHECK", c1, "a").status == 0)
            #expect(try world.firewall("STATUS", c1, "a", withPrevious: false).status == 0)
            let version = try world.firewall("VERSION", c1, "a", withPrevious: false)
            #expect((version.object["supportedVersions"] as? [String])?.contains("0.4.0") == true)
            // A repeated ADD changes nothing and still succeeds.
            let before = try world.ruleset()
            #expect(try world.firewall("ADD", c1, "a").status == 0)
            #expect(try world.ruleset() == before)

            let del = try world.firewall("DEL", c1, "a")
            #expect(del.status == 0, "DEL: \(del.stdout)")
            #expect(try world.elements("fw_v4") == ["\(a2) comment \"\(t2)\""])
            #expect(try world.elements("fw_v6").count == 1)
            // DEL again, and DEL with nothing but the attachment identity.
            #expect(try world.firewall("DEL", c1, "a").status == 0)
            #expect(try world.firewall("DEL", c1, "a", withPrevious: false).status == 0)
            // CHECK notices the missing elements.
            let check = try world.firewall("CHECK", c1, "a")
            #expect(check.errorCode == 999, "CHECK after DEL: \(check.stdout)")
            #expect(check.stdout.contains(a1))
            // The rules stay for the other container.
            #expect(try world.firewall("CHECK", c2, "a").status == 0)
        }
    }

    @Test func gcRemovesOnlyAttachmentsThatAreNotValid() throws {
        try withTestHosts(5) { hosts in
            let world = try FirewallWorld(host: hosts[0], outside: hosts[1])
            defer { world.detachAll() }
            world.addNetwork("a", index: 1, firewallKeys: ["ingressPolicy": "isolated"])
            world.addNetwork("b", index: 2)
            let (c1, c2, c3) = (hosts[2], hosts[3], hosts[4])
            for (container, network) in [(c1, "a"), (c2, "a"), (c3, "b")] {
                let output = try world.attach(container, to: network)
                try #require(output.status == 0, "ADD: \(output.stdout)")
            }
            let gc = try world.firewall(
                "GC", c1, "a", withPrevious: false,
                extra: ["cni.dev/valid-attachments": [["containerID": c2.name, "ifname": "eth0"]]])
            #expect(gc.status == 0, "GC: \(gc.stdout)")
            let remaining = try world.elements("fw_v4").joined(separator: "\n")
            #expect(!remaining.contains(Self.tag(world, "a", c1)))
            #expect(remaining.contains(Self.tag(world, "a", c2)))
            // Another network's attachments are not this GC's business.
            #expect(remaining.contains(Self.tag(world, "b", c3)))
            let ports = try world.elements("fw_isolated_ports", family: "bridge")
            #expect(ports.count == 1 && ports.first?.contains(Self.tag(world, "a", c2)) == true)
            #expect(try world.elements("fw_ingress_v4").count == 1)
        }
    }

    /// same-bridge: a container of another bridge network cannot open connections into the
    /// container; its own bridge, the host's uplink and replies to its own connections can.
    /// isolated: not even its own bridge. Open networks are reachable from everywhere.
    @Test func ingressPoliciesKeepOtherBridgesOutButLetRepliesIn() throws {
        try withTestHosts(7) { hosts in
            let world = try FirewallWorld(host: hosts[0], outside: hosts[1])
            defer { world.detachAll() }
            world.addNetwork("s", index: 1, firewallKeys: ["ingressPolicy": "same-bridge"], ipv6: true)
            world.addNetwork("o", index: 2, firewallKeys: ["ingressPolicy": "open"], ipv6: true)
            world.addNetwork("i", index: 3, firewallKeys: ["ingressPolicy": "isolated", "backend": "iptables"])
            let (s1, s2, o1, i1, i2) = (hosts[2], hosts[3], hosts[4], hosts[5], hosts[6])
            for (container, network) in [(s1, "s"), (s2, "s"), (o1, "o"), (i1, "i"), (i2, "i")] {
                let output = try world.attach(container, to: network)
                try #require(output.status == 0, "ADD \(network): \(output.stdout)")
            }
            var servers: [PeerEchoServer] = []
            defer { for server in servers { server.stop() } }
            for container in [s1, o1, i1] { servers.append(try PeerEchoServer(in: container, port: 7000)) }
            let (sa, oa, ia) = (
                try #require(world.address(of: s1)), try #require(world.address(of: o1)),
                try #require(world.address(of: i1))
            )
            let blocked = 1.0

            // same-bridge
            #expect(askPeerAddress(from: s2, to: sa, port: 7000) == world.address(of: s2))
            #expect(askPeerAddress(from: o1, to: sa, port: 7000, timeout: blocked) == nil)
            #expect(askPeerAddress(from: i2, to: sa, port: 7000, timeout: blocked) == nil)
            #expect(askPeerAddress(from: world.outside, to: sa, port: 7000) == FirewallWorld.outsideV4)
            // Its own connections out get their replies (accepted before the ingress drop).
            #expect(askPeerAddress(from: s1, to: oa, port: 7000) == sa)
            // The same over IPv6.
            let (sa6, oa6) = (
                try #require(world.address(of: s1, ipv6: true)), try #require(world.address(of: o1, ipv6: true))
            )
            #expect(askPeerAddress(from: s2, to: sa6, port: 7000) == world.address(of: s2, ipv6: true))
            #expect(askPeerAddress(from: o1, to: sa6, port: 7000, timeout: blocked) == nil)
            #expect(askPeerAddress(from: s1, to: oa6, port: 7000) == sa6)
            // isolated: the same bridge is refused too (IPv4, not ARP), other bridges as well.
            #expect(askPeerAddress(from: i2, to: ia, port: 7000, timeout: blocked) == nil)
            #expect(askPeerAddress(from: o1, to: ia, port: 7000, timeout: blocked) == nil)
            #expect(askPeerAddress(from: s2, to: ia, port: 7000, timeout: blocked) == nil)
            #expect(askPeerAddress(from: world.outside, to: ia, port: 7000) == FirewallWorld.outsideV4)
            #expect(askPeerAddress(from: i1, to: oa, port: 7000) == ia)
            #expect(try i2.run(["ip", "neigh", "show", ia]).stdout.contains("lladdr"))
            // open: reachable from every bridge.
            #expect(askPeerAddress(from: s2, to: oa, port: 7000) == world.address(of: s2))
            #expect(askPeerAddress(from: i2, to: oa, port: 7000) == world.address(of: i2))

            let bridgeS = world.bridgeName("s")
            #expect(
                try world.elements("fw_ingress_v4").contains(
                    "\(bridgeS) . \(sa) comment \"\(Self.tag(world, "s", s1))\""))
            #expect(try world.elements("same_bridge").contains { $0.hasPrefix("\(bridgeS) . \(bridgeS) ") })
            #expect(try world.elements("fw_isolated_ports", family: "bridge").count == 2)

            // Without s1's elements the policy no longer applies to it.
            #expect(try world.firewall("DEL", s1, "s").status == 0)
            #expect(askPeerAddress(from: o1, to: sa, port: 7000) == oa)
            #expect(try world.firewall("DEL", i1, "i", withPrevious: false).status == 0)
            #expect(askPeerAddress(from: o1, to: ia, port: 7000) == oa)
            #expect(try world.elements("fw_isolated_ports", family: "bridge").count == 1)
        }
    }

    /// The firewall's accepts run in a chain of their own after Pier's `forward`: they let
    /// nothing through that the bridge's isolation between networks drops.
    @Test func acceptsNeverOverrideTheBridgesIsolation() throws {
        try withTestHosts(4) { hosts in
            let world = try FirewallWorld(host: hosts[0], outside: hosts[1])
            defer { world.detachAll() }
            world.addNetwork("x", index: 1, bridgeIsolation: true)
            world.addNetwork("y", index: 2, bridgeIsolation: true)
            let (x1, y1) = (hosts[2], hosts[3])
            try #require(try world.attach(x1, to: "x").status == 0)
            try #require(try world.attach(y1, to: "y").status == 0)
            let server = try PeerEchoServer(in: y1, port: 7000)
            defer { server.stop() }
            let y1Address = try #require(world.address(of: y1))
            #expect(askPeerAddress(from: x1, to: y1Address, port: 7000, timeout: 1) == nil)
            #expect(askPeerAddress(from: world.outside, to: y1Address, port: 7000) == FirewallWorld.outsideV4)
            let chains = try world.host.nftJSON(["list", "table", "inet", "pier"]).compactMap {
                $0["chain"] as? [String: Any]
            }
            let priority = { (name: String) in chains.first { $0["name"] as? String == name }?["prio"] as? Int }
            #expect(try #require(priority("fw_forward")) > (try #require(priority("forward"))))
        }
    }

    /// An accept ends only its own chain, so a forward chain of another table with policy drop
    /// (what `iptables-nft -P FORWARD DROP` makes, as Docker does) drops container traffic until
    /// Pier's accept rule for its marked traffic is in that chain: the firewall ADD puts it
    /// there. It lets through what the reference's accepts do: everything from the containers,
    /// and replies to them; new connections into a container stay that chain's decision.
    @Test func aDropPolicyInAnotherTableIsPassedByPiersMarkedTraffic() throws {
        try withTestHosts(3) { hosts in
            let world = try FirewallWorld(host: hosts[0], outside: hosts[1])
            defer { world.detachAll() }
            world.addNetwork("a", index: 1)
            let container = hosts[2]
            try #require(try world.attach(container, to: "a").status == 0)
            let address = try #require(world.address(of: container))
            let outsideServer = try PeerEchoServer(in: world.outside, port: 7100)
            let containerServer = try PeerEchoServer(in: container, port: 7100)
            defer {
                outsideServer.stop()
                containerServer.stop()
            }
            #expect(askPeerAddress(from: container, to: FirewallWorld.outsideV4, port: 7100) == FirewallWorld.hostV4)
            #expect(askPeerAddress(from: world.outside, to: address, port: 7100) != nil)

            try world.host.mustRun(["iptables-nft", "-P", "FORWARD", "DROP"])
            #expect(askPeerAddress(from: container, to: FirewallWorld.outsideV4, port: 7100, timeout: 1) == nil)

            // The firewall plugin's ADD (read before write) puts Pier's rule into that chain.
            #expect(try world.firewall("ADD", container, "a").status == 0)
            let listing = try world.host.mustRun(["iptables-nft", "-S", "FORWARD"]).stdout
            #expect(listing.contains("-m mark --mark 0x1000000/0x1000000"), "\(listing)")
            #expect(askPeerAddress(from: container, to: FirewallWorld.outsideV4, port: 7100) == FirewallWorld.hostV4)
            // New connections into the container stay that chain's decision, as with the reference.
            #expect(askPeerAddress(from: world.outside, to: address, port: 7100, timeout: 1) == nil)
        }
    }

    /// Firewall ADDs racing on a fresh host: every element lands once, every rule exists once.
    @Test func concurrentAddsNeitherLoseElementsNorDuplicateRules() throws {
        let count = 6
        try withTestHosts(2 + count) { hosts in
            let world = try FirewallWorld(host: hosts[0], outside: hosts[1])
            defer { world.detachAll() }
            world.addNetwork("a", index: 1, firewallKeys: ["ingressPolicy": "isolated"])
            let containers = Array(hosts.dropFirst(2))
            // The bridge ADDs one by one (their own races are the bridge tests' business); then
            // every firewall ADD at once.
            for container in containers {
                let output = try world.attachBridgeOnly(container, to: "a")
                try #require(output.status == 0, "bridge ADD: \(output.stdout)")
            }
            let outputs = Mutex<[PluginOutput]>([])
            DispatchQueue.concurrentPerform(iterations: count) { index in
                if let output = try? world.firewall("ADD", containers[index], "a") {
                    outputs.withLock { $0.append(output) }
                }
            }
            let results = outputs.withLock { $0 }
            #expect(results.count == count)
            for output in results { #expect(output.status == 0, "ADD: \(output.stdout)") }
            #expect(try world.elements("fw_v4").count == count)
            #expect(try world.elements("fw_ingress_v4").count == count)
            #expect(try world.elements("fw_isolated_ports", family: "bridge").count == count)
            let comments = try world.host.nftJSON(["list", "ruleset"]).compactMap {
                ($0["rule"] as? [String: Any])?["comment"] as? String
            }
            let firewallRules = comments.filter { $0.hasPrefix("pier:firewall-") }
            #expect(firewallRules.count == 7 && Set(firewallRules).count == 7, "\(firewallRules)")
        }
    }

    /// Bad input is refused with code 7 before anything reaches the kernel.
    @Test func badConfigIsCode7AndChangesNothing() throws {
        try withTestHosts(3) { hosts in
            let world = try FirewallWorld(host: hosts[0], outside: hosts[1])
            defer { world.detachAll() }
            world.addNetwork("a", index: 1)
            let container = hosts[2]
            let previous: [String: Any] = [
                "cniVersion": "1.1.0",
                "interfaces": [["name": "br0"], ["name": "veth0"], ["name": "eth0", "sandbox": container.path]],
                "ips": [["address": "10.61.1.9/24", "interface": 2]],
            ]
            let cases: [(String, [String: Any])] = [
                ("unknown backend", ["backend": "ebtables", "prevResult": previous]),
                ("unknown ingressPolicy", ["ingressPolicy": "closed", "prevResult": previous]),
                ("ingressPolicy not a string", ["ingressPolicy": 1, "prevResult": previous]),
                ("no prevResult", [:]),
                (
                    "isolated without a bridge port",
                    [
                        "ingressPolicy": "isolated",
                        "prevResult": [
                            "cniVersion": "1.1.0", "interfaces": [["name": "eth0", "sandbox": container.path]],
                            "ips": [["address": "10.61.1.9/24", "interface": 0]],
                        ],
                    ]
                ),
            ]
            let before = try world.ruleset()
            for (label, extra) in cases {
                let output = try world.firewall("ADD", container, "a", withPrevious: false, extra: extra)
                #expect(output.errorCode == 7, "\(label): \(output.stdout)")
                let check = try world.firewall("CHECK", container, "a", withPrevious: false, extra: extra)
                #expect(check.errorCode == 7, "CHECK \(label): \(check.stdout)")
            }
            #expect(try world.ruleset() == before)
            // DEL never fails, whatever it is given.
            let del = try world.firewall("DEL", container, "a", withPrevious: false, extra: ["backend": "ebtables"])
            #expect(del.status == 0, "DEL: \(del.stdout)")
            // The reference's other keys are accepted.
            let accepted = try world.firewall(
                "ADD", container, "a", withPrevious: false,
                extra: [
                    "backend": "firewalld", "firewalldZone": "trusted", "iptablesAdminChainName": "CNI-ADMIN",
                    "prevResult": previous,
                ])
            #expect(accepted.status == 0, "reference keys: \(accepted.stdout)")
            #expect(try world.elements("fw_v4") == ["10.61.1.9 comment \"\(Self.tag(world, "a", container))\""])
            #expect(try world.firewall("DEL", container, "a", withPrevious: false).status == 0)
            #expect(try world.elements("fw_v4").isEmpty)
        }
    }

    /// The conflist `podman network create` writes for the CNI backend (bridge + portmap +
    /// firewall; tuning left out), run end to end by `pier plugin` as libcni would.
    @Test func aPodmanStyleConflistRunsEndToEnd() throws {
        try withTestHosts(3) { hosts in
            let (host, outside, container) = (hosts[0], hosts[1], hosts[2])
            let world = try FirewallWorld(host: host, outside: outside)
            defer { world.detachAll() }
            let directory = NSTemporaryDirectory() + "pier-t-fw-\(uniqueTag())"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let name = "pier-t-podman-\(uniqueTag(6))"
            let bridge = "cni-podman\(uniqueTag(3))"
            let conflist: [String: Any] = [
                "cniVersion": "0.4.0", "name": name,
                "plugins": [
                    [
                        "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
                        "ipam": [
                            "type": "host-local", "routes": [["dst": "0.0.0.0/0"]],
                            "ranges": [[["subnet": "10.61.9.0/24", "gateway": "10.61.9.1"]]],
                            "dataDir": directory + "/leases",
                        ],
                    ],
                    ["type": "portmap", "capabilities": ["portMappings": true]],
                    ["type": "firewall", "backend": ""],
                ],
            ]
            let file = directory + "/\(name).conflist"
            try JSONSerialization.data(withJSONObject: conflist).write(to: URL(fileURLWithPath: file))
            // host-local is the reference IPAM; Pier's `ipam` answers to it only under its own
            // name, so a directory with both names stands in for a Podman host's CNI_PATH.
            let pluginDirectory = directory + "/bin"
            try FileManager.default.createDirectory(atPath: pluginDirectory, withIntermediateDirectories: true)
            for plugin in ["bridge", "portmap", "firewall", "ipam"] {
                try FileManager.default.createSymbolicLink(
                    atPath: "\(pluginDirectory)/\(plugin)", withDestinationPath: "\(builtProductsDirectory)/\(plugin)")
            }
            try FileManager.default.createSymbolicLink(
                atPath: "\(pluginDirectory)/host-local", withDestinationPath: "\(builtProductsDirectory)/ipam")
            func pier(_ arguments: [String]) throws -> CommandResult {
                try runCommand(
                    [
                        "nsenter", "--net=\(host.path)", builtProductsDirectory + "/pier", "--cache-dir",
                        directory + "/cache", "--cni-path", pluginDirectory, "--root", directory + "/root",
                    ] + arguments)
            }
            let common = ["--config", file, "--netns", container.path, "--container-id", "podctr"]
            let add = try pier(
                ["plugin", "add"] + common + [
                    "--cap", #"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}"#,
                ])
            try #require(add.succeeded, "plugin add: \(add.stdout) \(add.stderr)")
            let tag = "net=\(name) podctr/eth0"
            let addresses = try world.elements("fw_v4")
            #expect(addresses.count == 1 && addresses.first?.hasSuffix("comment \"\(tag)\"") == true)
            let containerAddress = try #require(addresses.first?.split(separator: " ").first.map(String.init))

            let server = try PeerEchoServer(in: container, port: 80)
            defer { server.stop() }
            #expect(askPeerAddress(from: outside, to: FirewallWorld.hostV4, port: 8080) == FirewallWorld.outsideV4)
            #expect(askPeerAddress(from: outside, to: containerAddress, port: 80) == FirewallWorld.outsideV4)

            #expect(try world.elements("dnat_v4", kind: "map").count == 1)
            let check = try pier(["plugin", "check"] + common)
            #expect(check.succeeded, "plugin check: \(check.stdout) \(check.stderr)")
            let del = try pier(["plugin", "del"] + common)
            #expect(del.succeeded, "plugin del: \(del.stdout) \(del.stderr)")
            #expect(try world.elements("fw_v4").isEmpty)
            #expect(try world.elements("dnat_v4", kind: "map").isEmpty)
            #expect(askPeerAddress(from: outside, to: FirewallWorld.hostV4, port: 8080, timeout: 1) == nil)
        }
    }
}
