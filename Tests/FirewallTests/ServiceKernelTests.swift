import Firewall
import Foundation
import IPAddressing
import NetNS
import PierTables
import PierTestSupport
import Testing

/// A service VIP on a router namespace with three member namespaces and a client, each on a
/// veth of its own: real TCP connections through `ServiceRules`, checked by who answered.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(2)))
struct ServiceKernelTests {
    static let vip = "10.96.0.10"
    static let service = "net1/web"
    static let port = ServicePort(ipProtocol: .tcp, port: 80, targetPort: 8080)

    /// hosts: client, router, member 1, 2, 3. Client 10.97.0.2, member i 10.97.i.2; every
    /// member answers `m<i> peer=<the address it sees>`.
    private func topology(_ hosts: [TestHost]) throws -> [BackgroundProgram] {
        let (client, router) = (hosts[0], hosts[1])
        try router.mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        var servers: [BackgroundProgram] = []
        for (index, host) in hosts.enumerated() where index != 1 {
            let subnet = index == 0 ? 0 : index - 1
            try connect(host, "e0", to: router, "r\(subnet)")
            try host.mustRun(["ip", "addr", "add", "10.97.\(subnet).2/24", "dev", "e0"])
            try host.mustRun(["ip", "route", "add", "default", "via", "10.97.\(subnet).1"])
            try router.mustRun(["ip", "addr", "add", "10.97.\(subnet).1/24", "dev", "r\(subnet)"])
            if host !== client {
                servers.append(
                    try BackgroundProgram(
                        in: host,
                        ["socat", "TCP-LISTEN:8080,reuseaddr,fork", "SYSTEM:echo m\(subnet) peer=$SOCAT_PEERADDR"]))
            }
        }
        for host in hosts[2...] { try waitForListener(in: host, port: 8080) }
        return servers
    }

    /// The routed topology with its servers running, and the router's `ServiceRules` and VIP.
    private func withRoutedMembers(_ body: ([TestHost], ServiceRules, IPAddress) throws -> Void) throws {
        try withTestHosts(5) { hosts in
            let servers = try topology(hosts)
            defer { for server in servers { server.stop() } }
            let nft = try NFTablesClient(namespace: NetworkNamespace.open(path: hosts[1].path))
            try body(hosts, ServiceRules(client: nft), try #require(IPAddress(Self.vip)))
        }
    }

    private func members(_ indices: [Int]) throws -> [IPAddress] {
        try indices.map { try #require(IPAddress("10.97.\($0).2")) }
    }

    /// `count` connections to the VIP from `host`, one answer line each ("" when none answered).
    private func connections(from host: TestHost, count: Int, vip: String = vip) throws -> [String] {
        let script = """
            for i in $(seq \(count)); do
              socat -T2 - TCP:\(vip):80,connect-timeout=2 </dev/null || echo failed
            done
            """
        let result = try host.run(["sh", "-c", script], timeout: 120)
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// Elements of a set (`service_hairpin_*`) or map of `inet pier`.
    private func elements(_ host: TestHost, _ set: String) throws -> [Any] {
        let kind = set.hasPrefix("service_hairpin") ? "set" : "map"
        let listing = try host.nftJSON(["list", kind, "inet", "pier", set])
        return listing.compactMap { ($0[kind] as? [String: Any])?["elem"] as? [Any] }.flatMap { $0 }
    }

    private func tally(_ answers: [String]) -> [String: Int] {
        answers.reduce(into: [:]) { counts, line in counts[String(line.prefix { $0 != " " }), default: 0] += 1 }
    }

    @Test func connectionsToTheVIPAreSpreadOverMembersAndARemovedMemberGetsNoNewOnes() throws {
        try withRoutedMembers { hosts, rules, vip in
            let (client, router) = (hosts[0], hosts[1])

            try rules.publish(service: Self.service, vip: vip, ports: [Self.port], members: try members([1, 2, 3]))
            #expect(try rules.members(vip: vip, port: Self.port) == (try members([1, 2, 3])))
            #expect(try elements(router, "service_slots_v4").count == ServiceRules.slotsPerPort)
            // nft itself can list what libnftnl built (operators read it with `nft list ruleset`).
            let listing = try router.run(["nft", "list", "table", "inet", "pier"])
            #expect(listing.succeeded && listing.stdout.contains("numgen random mod 60"), "\(listing.stderr)")
            let answers = try connections(from: client, count: 300)
            let counts = tally(answers)
            #expect(answers.count == 300 && counts["failed"] == nil, "\(counts)")
            // An even share is 100; 60...140 is about five standard deviations of a fair split.
            for member in ["m1", "m2", "m3"] {
                #expect((60...140).contains(counts[member] ?? 0), "\(member): \(counts)")
            }
            // Clients keep their own source address: only hairpin is masqueraded.
            #expect(answers.allSatisfy { $0.hasSuffix("peer=10.97.0.2") }, "\(Set(answers))")

            // Member 3 leaves: re-publishing replaces the choice in one batch.
            try rules.publish(service: Self.service, vip: vip, ports: [Self.port], members: try members([1, 2]))
            let after = tally(try connections(from: client, count: 60))
            #expect(after["m3"] == nil && after["failed"] == nil, "\(after)")
            #expect((after["m1"] ?? 0) + (after["m2"] ?? 0) == 60, "\(after)")

            // Hairpin: a member reaching its own VIP is answered (masqueraded to the router).
            let hairpin = tally(try connections(from: hosts[2], count: 20))
            #expect(hairpin["failed"] == nil && (hairpin["m1"] ?? 0) + (hairpin["m2"] ?? 0) == 20, "\(hairpin)")

            // Another service cannot take the VIP port: the whole batch fails and changes nothing.
            #expect(throws: FirewallError.self) {
                try rules.publish(service: "net1/other", vip: vip, ports: [Self.port], members: try members([3]))
            }
            #expect(try rules.members(vip: vip, port: Self.port) == (try members([1, 2])))
            #expect(tally(try connections(from: client, count: 10))["m3"] == nil)

            // Removed: no chain and no map element is left, and the VIP no longer answers.
            try rules.remove(service: Self.service, vip: vip, ports: [Self.port])
            try rules.remove(service: Self.service, vip: vip, ports: [Self.port])  // already gone: fine
            #expect(try elements(router, "service_slots_v4").isEmpty)
            #expect(try rules.members(vip: vip, port: Self.port).isEmpty)
            #expect(tally(try connections(from: client, count: 1))["failed"] == 1)
            // The hairpin elements go when the addresses leave their last service.
            #expect(try elements(router, "service_hairpin_v4").count == 3)  // m3 left, but was not forgotten
            try rules.forgetMembers(try members([1, 2, 3]))
            #expect(try elements(router, "service_hairpin_v4").isEmpty)
        }
    }

    /// The same over IPv6: client fd97::2, member i fd97:i::2, VIP fd96::10.
    @Test func anIPv6VIPSpreadsOverIPv6Members() throws {
        try withTestHosts(5) { hosts in
            let (client, router) = (hosts[0], hosts[1])
            try router.mustRun(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            var servers: [BackgroundProgram] = []
            defer { for server in servers { server.stop() } }
            for (index, host) in hosts.enumerated() where index != 1 {
                let subnet = index == 0 ? 0 : index - 1
                try connect(host, "e0", to: router, "r\(subnet)")
                try host.mustRun(["ip", "addr", "add", "fd97:\(subnet)::2/64", "dev", "e0", "nodad"])
                try host.mustRun(["ip", "-6", "route", "add", "default", "via", "fd97:\(subnet)::1"])
                try router.mustRun(["ip", "addr", "add", "fd97:\(subnet)::1/64", "dev", "r\(subnet)", "nodad"])
                if host !== client {
                    servers.append(
                        try BackgroundProgram(
                            in: host,
                            ["socat", "TCP6-LISTEN:8080,reuseaddr,fork", "SYSTEM:echo m\(subnet) peer=$SOCAT_PEERADDR"])
                    )
                }
            }
            for host in hosts[2...] { try waitForListener(in: host, port: 8080) }
            // IPv6 forwarding starts once the router's link-local addresses are through DAD.
            for member in 1...3 {
                #expect((0..<20).contains { _ in client.canPing("fd97:\(member)::2", timeoutSeconds: 1) })
            }
            let nft = try NFTablesClient(namespace: NetworkNamespace.open(path: router.path))
            let members = try [1, 2, 3].map { try #require(IPAddress("fd97:\($0)::2")) }
            try ServiceRules(client: nft).publish(
                service: Self.service, vip: try #require(IPAddress("fd96::10")), ports: [Self.port], members: members)
            let script = """
                for i in $(seq 90); do
                  socat -T2 - 'TCP6:[fd96::10]:80,connect-timeout=2' </dev/null || echo failed
                done
                """
            let answers = try client.run(["sh", "-c", script], timeout: 120).stdout.split(separator: "\n").map(
                String.init)
            let counts = tally(answers)
            #expect(answers.count == 90 && counts["failed"] == nil, "\(counts)")
            for member in ["m1", "m2", "m3"] { #expect((12...48).contains(counts[member] ?? 0), "\(counts)") }
            // socat writes the peer in full: the client's own address, not the router's.
            let clientPeer = "peer=[fd97:0000:0000:0000:0000:0000:0000:0002]"
            #expect(answers.allSatisfy { $0.hasSuffix(clientPeer) }, "\(Set(answers))")
        }
    }

    /// Client and members on one bridge, as on a Pier bridge network: the VIP 10.90.0.200 is in
    /// the subnet and a /32 on the bridge, so the host answers ARP for it; replies from a member to the client are bridged
    /// and need `bridge-nf-call-iptables` for conntrack to restore the VIP as their source; a
    /// member reaching itself is bridged back out its own port (hairpin mode) and masqueraded.
    @Test func aVIPOnABridgeWithItsClientsAndMembers() throws {
        try withTestHosts(5) { hosts in
            let (client, router) = (hosts[0], hosts[1])
            try router.mustRun(["ip", "link", "add", "br0", "type", "bridge"])
            try router.mustRun(["ip", "link", "set", "br0", "up"])
            try router.mustRun(["ip", "addr", "add", "10.90.0.1/24", "dev", "br0"])
            try router.mustRun(["ip", "addr", "add", "10.90.0.200/32", "dev", "br0"])
            try router.mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            try router.mustRun(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])
            var servers: [BackgroundProgram] = []
            defer { for server in servers { server.stop() } }
            for (index, host) in hosts.enumerated() where index != 1 {
                let number = index == 0 ? 0 : index - 1
                try connect(host, "e0", to: router, "p\(number)")
                try router.mustRun(["ip", "link", "set", "p\(number)", "master", "br0"])
                // The bridge plugin's `hairpinMode`: a member's hairpin comes back out its own port.
                try router.mustRun(["bridge", "link", "set", "dev", "p\(number)", "hairpin", "on"])
                try host.mustRun(["ip", "addr", "add", "10.90.0.\(number + 10)/24", "dev", "e0"])
                if host !== client {
                    servers.append(
                        try BackgroundProgram(
                            in: host,
                            ["socat", "TCP-LISTEN:8080,reuseaddr,fork", "SYSTEM:echo m\(number) peer=$SOCAT_PEERADDR"]))
                }
            }
            for host in hosts[2...] { try waitForListener(in: host, port: 8080) }
            let nft = try NFTablesClient(namespace: NetworkNamespace.open(path: router.path))
            let members = try [11, 12, 13].map { try #require(IPAddress("10.90.0.\($0)")) }
            try ServiceRules(client: nft).publish(
                service: Self.service, vip: try #require(IPAddress("10.90.0.200")), ports: [Self.port],
                members: members)
            let answers = try connections(from: client, count: 90, vip: "10.90.0.200")
            let counts = tally(answers)
            #expect(answers.count == 90 && counts["failed"] == nil, "\(counts)")
            for member in ["m1", "m2", "m3"] { #expect((12...48).contains(counts[member] ?? 0), "\(counts)") }
            #expect(answers.allSatisfy { $0.hasSuffix("peer=10.90.0.10") }, "\(Set(answers))")
            // Hairpin on the bridge: every connection answered, including those back to the asker.
            let hairpin = tally(try connections(from: hosts[2], count: 30, vip: "10.90.0.200"))
            #expect(hairpin["failed"] == nil && (hairpin["m1"] ?? 0) > 0, "\(hairpin)")
        }
    }

    @Test func aVIPWithoutPortsAnswersOnEveryPortAndTheMeshOnEveryLocalAddress() throws {
        try withRoutedMembers { hosts, rules, vip in
            let (client, router) = (hosts[0], hosts[1])
            // No ports: the whole VIP, each connection to the same port of a member (Swarm's VIP).
            try rules.publish(service: Self.service, vip: vip, ports: [], members: try members([1, 2, 3]))
            #expect(try elements(router, "service_vips_v4").count == ServiceRules.slotsPerPort)
            #expect(try rules.members(vip: vip, port: nil) == (try members([1, 2, 3])))
            let script =
                "for i in $(seq 60); do socat -T2 - TCP:\(Self.vip):8080,connect-timeout=2 </dev/null || echo failed; done"
            let answers = try client.run(["sh", "-c", script], timeout: 60).stdout.split(separator: "\n").map(
                String.init)
            let counts = tally(answers)
            #expect(answers.count == 60 && counts["failed"] == nil && counts.count == 3, "\(counts)")
            #expect(answers.allSatisfy { $0.hasSuffix("peer=10.97.0.2") }, "\(Set(answers))")
            // Port 80 of the VIP has no member listening behind it: refused, not answered elsewhere.
            #expect(tally(try connections(from: client, count: 1))["failed"] == 1)

            // The mesh: port 9090 on any address of the router reaches a member's 8080, masqueraded.
            let mesh = ServicePort(ipProtocol: .tcp, port: 9090, targetPort: 8080)
            try rules.publishMesh(service: Self.service, family: .v4, ports: [mesh], members: try members([1, 2]))
            #expect(try rules.meshMembers(family: .v4, port: mesh) == (try members([1, 2])))
            let meshScript =
                "for i in $(seq 40); do socat -T2 - TCP:10.97.0.1:9090,connect-timeout=2 </dev/null || echo failed; done"
            let meshAnswers = try client.run(["sh", "-c", meshScript], timeout: 60).stdout.split(separator: "\n")
                .map(String.init)
            let meshCounts = tally(meshAnswers)
            #expect(meshAnswers.count == 40 && meshCounts["failed"] == nil && meshCounts["m3"] == nil, "\(meshCounts)")
            #expect(meshAnswers.allSatisfy { $0.hasSuffix("peer=10.97.1.1") || $0.hasSuffix("peer=10.97.2.1") })
            // Another service cannot take the mesh port.
            #expect(throws: FirewallError.self) {
                try rules.publishMesh(service: "net1/other", family: .v4, ports: [mesh], members: try members([3]))
            }
            try rules.removeMesh(service: Self.service, family: .v4, ports: [mesh])
            try rules.remove(service: Self.service, vip: vip, ports: [])
            #expect(try elements(router, "service_vips_v4").isEmpty && elements(router, "service_mesh_v4").isEmpty)
            let gone = try client.run(["socat", "-T2", "-", "TCP:10.97.0.1:9090,connect-timeout=2"], timeout: 10)
            #expect(!gone.succeeded)
        }
    }

    @Test func clientIPAffinityKeepsAClientOnOneMember() throws {
        try withRoutedMembers { hosts, rules, vip in
            let (client, router) = (hosts[0], hosts[1])
            try rules.publish(service: Self.service, vip: vip, ports: [Self.port], members: try members([1, 2, 3]))
            // Switching the service to affinity moves its slots from one map to the other.
            try rules.publish(
                service: Self.service, vip: vip, ports: [Self.port], members: try members([1, 2, 3]),
                affinity: .clientIP)
            #expect(try elements(router, "service_slots_v4").isEmpty)
            #expect(try elements(router, "service_affinity_v4").count == ServiceRules.slotsPerPort)
            let counts = tally(try connections(from: client, count: 30))
            #expect(counts.count == 1 && counts.values.first == 30 && counts["failed"] == nil, "\(counts)")
        }
    }
}
