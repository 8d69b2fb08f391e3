import Foundation
import PierTestSupport
import Testing

/// Services through `pier`, as a user runs them: members join with `run --service`, clients on
/// the network connect to the service by name, and the kernel (nft maps, the bridge's
/// addresses) and the name service follow members that start, die and go.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(4)))
struct ServiceTests {
    /// A member answering every TCP connection on port 80 with its name and the peer it sees.
    static func member(
        _ pier: PierHarness, _ name: String, service: String, network: String, _ extra: [String] = [],
        listen: String = "TCP-LISTEN:80"
    ) throws {
        try pier.mustPier(
            ["run", "-d", "--name", name, "--net", network, "--service", service] + extra + [
                "socat", "\(listen),reuseaddr,fork", "SYSTEM:echo \(name) peer=$SOCAT_PEERADDR",
            ])
    }

    /// `count` connections from `client` to `target` (a name or address) port 80; one answer
    /// line each, "failed" for a connection nobody answered.
    static func connections(_ pier: PierHarness, from client: String, to target: String, port: Int = 80, count: Int)
        throws -> [String]
    {
        let script = """
            for i in $(seq \(count)); do
              socat -T2 - TCP:\(target):\(port),connect-timeout=2 </dev/null || echo failed
            done
            """
        let result = try pier.pier(["exec", client, "sh", "-c", script], timeout: 120)
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// `run -d` returns before the member's server listens: waits (up to 15 s) until 8
    /// connections in a row are answered, by `members` different members.
    static func waitUntilEveryMemberAnswers(
        _ pier: PierHarness, from client: String, to target: String, port: Int = 80, members: Int
    ) {
        _ = eventually(15) {
            let answers = (try? connections(pier, from: client, to: target, port: port, count: 8)) ?? []
            return answers.count == 8 && !answers.contains("failed") && Set(tally(answers).keys).count == members
        }
    }

    static func tally(_ answers: [String]) -> [String: Int] {
        answers.reduce(into: [:]) { counts, line in counts[String(line.prefix { $0 != " " }), default: 0] += 1 }
    }

    /// The members the service's whole-VIP slots DNAT to, from `nft -j` in the harness's host.
    static func slotMembers(_ pier: PierHarness, map: String = "service_vips_v4") throws -> Set<String> {
        let listing = try pier.host.nftJSON(["list", "map", "inet", "pier", map])
        let elements = listing.compactMap { ($0["map"] as? [String: Any])?["elem"] as? [Any] }.flatMap { $0 }
        var members = Set<String>()
        for element in elements {
            guard let pair = element as? [Any], pair.count == 2, let member = pair[1] as? String else { continue }
            members.insert(member)
        }
        return members
    }

    static func serviceField(_ pier: PierHarness, _ name: String, column: Int) throws -> String? {
        let lines = try pier.mustPier(["service", "ls"]).stdout.split(separator: "\n")
        let row = lines.first { $0.split(separator: " ").first.map(String.init) == name }
        return row?.split(separator: " ", omittingEmptySubsequences: true).dropFirst(column).first.map(String.init)
    }

    @Test func aServiceNameReachesItsVIPWhichSpreadsOverRunningMembersOnly() throws {
        try NameResolutionTests.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try NameResolutionTests.create(pier, records, "svc", ["--subnet", "10.232.\(third).0/24"]).succeeded)
            let members = [pier.name("web1"), pier.name("web2"), pier.name("web3")]
            for name in members { try Self.member(pier, name, service: "web", network: "svc") }
            let client = pier.name("client")
            try pier.mustPier(["run", "-d", "--name", client, "--net", "svc", "sleep", "300"])
            var addresses: [String: String] = [:]
            for name in members { addresses[name] = try #require(try pier.address(of: name)) }
            let clientAddress = try #require(try pier.address(of: client))

            // `web` is the VIP, leased on the network; `tasks.web` every member.
            let vip = try #require(try Self.serviceField(pier, "web", column: 3))
            #expect(vip.hasPrefix("10.232.\(third)."), "\(vip)")
            #expect(try NameResolutionTests.lookUp(pier, in: client, "web") == [vip])
            #expect(Set(try NameResolutionTests.lookUp(pier, in: client, "tasks.web")) == Set(addresses.values))
            #expect(try Self.slotMembers(pier) == Set(addresses.values))
            let bridge = try pier.host.mustRun(["ip", "-j", "addr", "show"]).stdout
            #expect(bridge.contains("\"local\":\"\(vip)\",\"prefixlen\":32"), "the bridge answers for the VIP")

            // 300 connections by name: each member's share near 100; the members see the client itself.
            let answers = try Self.connections(pier, from: client, to: "web", count: 300)
            let counts = Self.tally(answers)
            #expect(answers.count == 300 && counts["failed"] == nil, "\(counts)")
            for name in members { #expect((60...140).contains(counts[name] ?? 0), "\(name): \(counts)") }
            #expect(answers.allSatisfy { $0.hasSuffix("peer=\(clientAddress)") }, "\(Set(answers))")
            // Hairpin: a member reaching its own service is answered.
            let hairpin = Self.tally(try Self.connections(pier, from: members[0], to: "web", count: 12))
            #expect(hairpin["failed"] == nil && hairpin.values.reduce(0, +) == 12, "\(hairpin)")

            // A killed member leaves the choice within a second, and no connection fails after it.
            try pier.mustPier(["kill", members[2]])
            usleep(1_000_000)
            #expect(try Self.slotMembers(pier) == Set([addresses[members[0]]!, addresses[members[1]]!]))
            let after = Self.tally(try Self.connections(pier, from: client, to: "web", count: 40))
            #expect(after["failed"] == nil && after[members[2]] == nil, "\(after)")
            #expect(Set(try NameResolutionTests.lookUp(pier, in: client, "tasks.web")).count == 2)
            #expect(try Self.serviceField(pier, "web", column: 4) == "2/3")
            // Started again, it is back.
            try pier.mustPier(["start", members[2]])
            #expect(eventually(2) { (try? Self.slotMembers(pier).count) == 3 })

            // `pier trace` follows the VIP hop to a member.
            let trace = try pier.pier(["trace", client, "\(vip):80"])
            #expect(trace.succeeded && trace.stdout.contains("is the VIP of svc/web"), "\(trace.stdout)")
            let inspect = try pier.mustPier(["service", "inspect", "web"]).stdout
            #expect(inspect.contains("VIP:       \(vip)") && inspect.contains(members[0]), "\(inspect)")
            #expect(inspect.contains("service_vips_v4: \(vip) . slot 0-59 ->"), "\(inspect)")

            for name in members + [client] { try pier.mustPier(["rm", "-f", name]) }
            #expect(try pier.mustPier(["service", "ls"]).stdout.split(separator: "\n").count == 1)
            #expect(try Self.slotMembers(pier).isEmpty)
            let addressesAfter = try pier.host.mustRun(["ip", "-j", "addr", "show"]).stdout
            #expect(!addressesAfter.contains("\"local\":\"\(vip)\""), "the VIP left the bridge")
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func dnsrrHasNoVIPAndAffinityKeepsAClientOnOneMember() throws {
        try NameResolutionTests.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try NameResolutionTests.create(pier, records, "rr", ["--subnet", "10.233.\(third).0/24"]).succeeded)
            let dnsrr = [pier.name("rr1"), pier.name("rr2")]
            for name in dnsrr {
                try Self.member(pier, name, service: "api", network: "rr", ["--endpoint-mode", "dnsrr"])
            }
            let sticky = [pier.name("st1"), pier.name("st2"), pier.name("st3")]
            for name in sticky {
                try Self.member(pier, name, service: "cache", network: "rr", ["--affinity", "client-ip"])
            }
            let client = pier.name("client")
            try pier.mustPier(["run", "-d", "--name", client, "--net", "rr", "sleep", "300"])

            #expect(try Self.serviceField(pier, "api", column: 3) == "-")
            let rrAddresses = Set(try dnsrr.map { try #require(try pier.address(of: $0)) })
            #expect(Set(try NameResolutionTests.lookUp(pier, in: client, "api")) == rrAddresses)
            #expect(try Self.slotMembers(pier, map: "service_vips_affinity_v4").count == 3)
            let answers = Self.tally(try Self.connections(pier, from: client, to: "cache", count: 20))
            #expect(answers.count == 1 && answers["failed"] == nil, "one client, one member: \(answers)")

            // A member must match the service: another endpoint mode is refused and changes nothing.
            let odd = pier.name("odd")
            let refused = try pier.pier(
                ["run", "-d", "--name", odd, "--net", "rr", "--service", "api", "sleep", "300"])
            #expect(!refused.succeeded && refused.stderr.contains("dnsrr"), "\(refused.stderr)")
            #expect(try pier.containers().contains { $0["name"] as? String == odd } == false)

            for name in dnsrr + sticky + [client] { try pier.mustPier(["rm", "-f", name]) }
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func networkConnectJoinsAServiceAndDisconnectLeavesIt() throws {
        try NameResolutionTests.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try NameResolutionTests.create(pier, records, "late", ["--subnet", "10.238.\(third).0/24"]).succeeded)
            let resident = pier.name("resident")
            try pier.mustPier(["run", "-d", "--name", resident, "--net", "late", "sleep", "300"])
            let joiner = pier.name("joiner")
            try pier.mustPier([
                "run", "-d", "--name", joiner, "--net", "none", "socat", "TCP-LISTEN:80,reuseaddr,fork",
                "SYSTEM:echo \(joiner)",
            ])
            try pier.mustPier(["network", "connect", "--service", "api", "late", joiner])
            let vip = try #require(try Self.serviceField(pier, "api", column: 3))
            #expect(try Self.serviceField(pier, "api", column: 4) == "1/1", "running: active at once")
            #expect(try NameResolutionTests.lookUp(pier, in: resident, "api") == [vip])
            let answers = try Self.connections(pier, from: resident, to: "api", count: 5)
            #expect(answers == Array(repeating: joiner, count: 5), "\(answers)")
            try pier.mustPier(["network", "disconnect", "late", joiner])
            #expect(try Self.serviceField(pier, "api", column: 0) == nil, "the last member left: the service went")
            #expect(try Self.slotMembers(pier).isEmpty)
            for name in [resident, joiner] { try pier.mustPier(["rm", "-f", name]) }
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func aDualStackNetworkGivesTheServiceAVIPOfEachFamily() throws {
        try NameResolutionTests.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try NameResolutionTests.create(
                    pier, records, "dual", ["--subnet", "10.239.\(third).0/24", "--subnet", "fd5e:\(third)::/64"]
                ).succeeded)
            let members = [pier.name("v6a"), pier.name("v6b")]
            for name in members {
                try Self.member(pier, name, service: "api", network: "dual", listen: "TCP6-LISTEN:80,ipv6only=0")
            }
            let client = pier.name("client")
            try pier.mustPier(["run", "-d", "--name", client, "--net", "dual", "sleep", "300"])
            let vips = try #require(try Self.serviceField(pier, "api", column: 3)).split(separator: ",").map(
                String.init)
            #expect(vips.count == 2 && vips[0].hasPrefix("10.239.") && vips[1].hasPrefix("fd5e:"), "\(vips)")
            #expect(try Self.slotMembers(pier, map: "service_vips_v6").count == 2)
            // Over IPv6 too, to both members.
            Self.waitUntilEveryMemberAnswers(pier, from: client, to: "[\(vips[1])]", members: 2)
            let answers = Self.tally(try Self.connections(pier, from: client, to: "[\(vips[1])]", count: 40))
            #expect(answers["failed"] == nil && answers.count == 2, "\(answers)")
            for name in members + [client] { try pier.mustPier(["rm", "-f", name]) }
            #expect(try Self.slotMembers(pier, map: "service_vips_v6").isEmpty)
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func badInputIsRefusedBeforeAnythingChanges() throws {
        try NameResolutionTests.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try NameResolutionTests.create(pier, records, "bad", ["--subnet", "10.234.\(third).0/24"]).succeeded)
            let taken = pier.name("taken")
            try pier.mustPier(["run", "-d", "--name", taken, "--net", "bad", "sleep", "300"])
            let takenAddress = try #require(try pier.address(of: taken))
            let name = pier.name("x")
            let cases: [([String], String)] = [
                (["--net", "bad", "--service", "not_a_label"], "DNS label"),
                (["--net", "bad", "--service=-web"], "DNS label"),
                (["--net", "nowhere", "--service", "web"], "nowhere"),
                (["--net", "host", "--service", "web"], "needs a CNI network"),
                (["--net", "bad", "--service", "web", "--service-vip", takenAddress], takenAddress),
                (["--net", "bad", "--service", "web", "--service-vip", "10.1.2.300"], "not an IP address"),
                (["--net", "bad", "--service", "web", "--endpoint-mode", "round"], "vip or dnsrr"),
                (["--net", "bad", "--endpoint-mode", "dnsrr"], "need --service"),
                (["--net", "bad", "--service", "web", "-p", "127.0.0.1:8080:80"], "HOSTPORT:CONTAINERPORT"),
            ]
            for (options, message) in cases {
                let result = try pier.pier(["run", "-d", "--name", name] + options + ["sleep", "300"])
                #expect(!result.succeeded && result.stderr.contains(message), "\(options): \(result.stderr)")
                #expect(try pier.containers().count == 1, "\(options) left a container")
            }
            try pier.mustPier(["rm", "-f", taken])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func thePublishedPortOfAServiceAnswersOnTheHostAndSurvivesAFirewallReload() throws {
        try NameResolutionTests.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try NameResolutionTests.create(pier, records, "mesh", ["--subnet", "10.235.\(third).0/24"]).succeeded)
            let members = [pier.name("m1"), pier.name("m2")]
            for name in members { try Self.member(pier, name, service: "front", network: "mesh", ["-p", "18080:80"]) }
            let client = pier.name("client")
            try pier.mustPier(["run", "-d", "--name", client, "--net", "mesh", "sleep", "300"])
            // From a container to the host's gateway address: a local address of the host.
            let gateway = "10.235.\(third).1"
            Self.waitUntilEveryMemberAnswers(pier, from: client, to: gateway, port: 18080, members: 2)
            let answers = Self.tally(try Self.connections(pier, from: client, to: gateway, port: 18080, count: 20))
            #expect(answers["failed"] == nil && answers.values.reduce(0, +) == 20, "\(answers)")
            #expect(Set(answers.keys).isSubset(of: Set(members)))

            // Flushed by someone else, put back by `pier firewall reload` (services included).
            try pier.host.mustRun(["nft", "flush", "ruleset"])
            try pier.mustPier(["firewall", "reload"])
            let again = Self.tally(try Self.connections(pier, from: client, to: "front", count: 10))
            #expect(again["failed"] == nil && again.values.reduce(0, +) == 10, "\(again)")
            let mesh = Self.tally(try Self.connections(pier, from: client, to: gateway, port: 18080, count: 5))
            #expect(mesh["failed"] == nil, "\(mesh)")

            for name in members + [client] { try pier.mustPier(["rm", "-f", name]) }
            #expect(try Self.slotMembers(pier, map: "service_mesh_v4").isEmpty)
            #expect(try pier.leftovers() == [])
        }
    }
}
