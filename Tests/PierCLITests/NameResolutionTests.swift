import Foundation
import PierTestSupport
import Testing

/// Names on user-defined networks, tried as a new user would: `pier network create`, `pier run`,
/// and programs inside the containers resolving each other through their own resolv.conf. The
/// real `names` plugin is on the harness's CNI path; its records (and so its name server) live in
/// the harness's directory.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct NameResolutionTests {
    /// A harness with `names` on its CNI path; kills a name server a failed test left behind.
    static func withNamedPier(_ body: (PierHarness, String) throws -> Void) throws {
        try withPier { pier in
            try FileManager.default.createSymbolicLink(
                atPath: pier.pluginDirectory + "/names", withDestinationPath: builtProductsDirectory + "/names")
            let records = pier.directory + "/dns"
            defer { killNameServer(records) }
            try body(pier, records)
        }
    }

    static func killNameServer(_ records: String) {
        guard let text = try? String(contentsOfFile: records + "/.pier-dns.pid", encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
            let command = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
            command.contains(records)
        else { return }
        kill(pid, SIGKILL)
    }

    static func nameServerRuns(_ records: String) -> Bool {
        guard let text = try? String(contentsOfFile: records + "/.pier-dns.pid", encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            let command = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
        else { return false }
        return command.contains(records)
    }

    /// `network create` with the harness's leases and records.
    @discardableResult
    static func create(_ pier: PierHarness, _ records: String, _ name: String, _ options: [String]) throws
        -> CommandResult
    {
        try NetworkManagementTests.create(pier, name, ["--dns-opt", "dataDir=\(records)"] + options)
    }

    /// The addresses `getent hosts NAME` finds inside a container (its resolv.conf, its libc).
    static func lookUp(_ pier: PierHarness, in container: String, _ name: String) throws -> [String] {
        let result = try pier.pier(["exec", container, "getent", "ahostsv4", name])
        guard result.succeeded else { return [] }
        var seen: [String] = []
        for line in result.stdout.split(separator: "\n") {
            if let address = line.split(separator: " ").first.map(String.init), !seen.contains(address) {
                seen.append(address)
            }
        }
        return seen
    }

    static func ask(_ pier: PierHarness, in container: String, server: String, _ questions: [String]) throws
        -> [DNSAnswer]
    {
        try DNSProbe.ask(server: server, questions) { try pier.pier(["exec", container] + $0) }
    }

    @Test func clientFetchesTheWebServerByNameAndTheNameGoesWithRm() throws {
        try Self.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(try Self.create(pier, records, "front", ["--subnet", "10.230.\(third).0/24"]).succeeded)
            let site = pier.directory + "/site"
            try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
            try "hello from web\n".write(toFile: site + "/index.html", atomically: true, encoding: .utf8)

            let web = pier.name("web")
            let client = pier.name("client")
            try pier.mustPier(["run", "-d", "--name", client, "--net", "front", "sleep", "300"])
            try pier.mustPier([
                "run", "-d", "--name", web, "--net", "front", "--alias", "web", "busybox", "httpd", "-f", "-p", "80",
                "-h", site,
            ])
            // The client's resolv.conf is its own (the host's filesystem otherwise), naming the gateway.
            let resolv = try pier.mustPier(["exec", client, "cat", "/etc/resolv.conf"]).stdout
            #expect(resolv.contains("nameserver 10.230.\(third).1") && resolv.contains("search dns.pier"), "\(resolv)")
            let hostResolv = try String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)
            #expect(!hostResolv.contains("10.230.\(third).1"), "the host's resolv.conf is untouched")

            // Started after the client, found by the client: no hosts-file snapshot.
            var page: String?
            _ = eventually(10) {
                let fetched = try? pier.pier(["exec", client, "curl", "-s", "-m", "2", "http://web/"])
                page = fetched?.succeeded == true ? fetched?.stdout : nil
                return page != nil
            }
            #expect(page == "hello from web\n")
            let webAddress = try #require(try NetworkManagementTests.address(pier, web, "eth0"))
            #expect(try Self.lookUp(pier, in: client, web) == [webAddress])
            #expect(try Self.lookUp(pier, in: client, "web.dns.pier") == [webAddress])

            try pier.mustPier(["rm", "-f", web])
            #expect(try Self.lookUp(pier, in: client, "web") == [], "the name goes with rm, at once")
            #expect(try Self.lookUp(pier, in: client, web) == [])
            #expect(Self.nameServerRuns(records))
            try pier.mustPier(["rm", "-f", client])
            #expect(!Self.nameServerRuns(records), "the server exits with the last container")
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func anAliasHeldBySeveralContainersAnswersEveryAddressInRotatingOrder() throws {
        try Self.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try Self.create(pier, records, "pool", ["--internal", "--subnet", "10.231.\(third).0/24"]).succeeded)
            var addresses: [String] = []
            for index in 1...3 {
                let name = pier.name("member\(index)")
                try pier.mustPier(["run", "-d", "--name", name, "--net", "pool", "--alias", "api", "sleep", "300"])
                addresses.append(try #require(try NetworkManagementTests.address(pier, name, "eth0")))
            }
            let answers = try Self.ask(
                pier, in: pier.name("member1"), server: "10.231.\(third).1", Array(repeating: "api A", count: 6))
            for answer in answers { #expect(Set(answer.addresses) == Set(addresses), "\(answer)") }
            // Every address leads in turn.
            #expect(Set(answers.compactMap(\.addresses.first)) == Set(addresses), "\(answers)")
            #expect(answers[0].addresses != answers[1].addresses)
            for index in 1...3 { try pier.mustPier(["rm", "-f", pier.name("member\(index)")]) }
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func networkConnectAndDisconnectAddAndRemoveTheNames() throws {
        try Self.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try Self.create(pier, records, "joined", ["--internal", "--subnet", "10.240.\(third).0/24"]).succeeded)
            let resident = pier.name("resident")
            let guest = pier.name("guest")
            try pier.mustPier(["run", "-d", "--name", resident, "--net", "joined", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", guest, "--net", "none", "sleep", "300"])
            #expect(try Self.lookUp(pier, in: resident, "api") == [])

            try pier.mustPier(["network", "connect", "--alias", "api", "joined", guest])
            let guestAddress = try #require(try NetworkManagementTests.address(pier, guest, "eth0"))
            #expect(try Self.lookUp(pier, in: resident, "api") == [guestAddress])
            #expect(try Self.lookUp(pier, in: resident, guest) == [guestAddress])

            try pier.mustPier(["network", "disconnect", "joined", guest])
            #expect(try Self.lookUp(pier, in: resident, "api") == [])
            #expect(try Self.lookUp(pier, in: resident, guest) == [])
            try pier.mustPier(["rm", "-f", resident, guest])
            #expect(try pier.leftovers() == [])
        }
    }

    /// Podman's resolver answers from one network only; here a container on `a` and `b` resolves
    /// the names of both, each with the address on the network it shares with the asker.
    @Test func aContainerOnTwoNetworksResolvesBothWithTheSharedNetworksAddresses() throws {
        try Self.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(
                try Self.create(pier, records, "neta", ["--internal", "--subnet", "10.232.\(third).0/24"]).succeeded)
            try #require(
                try Self.create(pier, records, "netb", ["--internal", "--subnet", "10.233.\(third).0/24"]).succeeded)
            let both = pier.name("both")
            let onA = pier.name("ona")
            let onB = pier.name("onb")
            try pier.mustPier(["run", "-d", "--name", both, "--net", "neta", "--net", "netb", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", onA, "--net", "neta", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", onB, "--net", "netb", "sleep", "300"])
            let bothA = try #require(try NetworkManagementTests.address(pier, both, "eth0"))
            let bothB = try #require(try NetworkManagementTests.address(pier, both, "eth1"))
            let aAddress = try #require(try NetworkManagementTests.address(pier, onA, "eth0"))
            let bAddress = try #require(try NetworkManagementTests.address(pier, onB, "eth0"))

            // From `both`, through its own resolv.conf (the first network's server): names of both.
            #expect(try Self.lookUp(pier, in: both, onA) == [aAddress])
            #expect(try Self.lookUp(pier, in: both, onB) == [bAddress])
            // Asked on either network's server, the same.
            let viaB = try Self.ask(pier, in: both, server: "10.233.\(third).1", ["\(onA) A", "\(onB) A"])
            #expect(viaB == [.found([aAddress]), .found([bAddress])])
            // Each single-network container sees `both` at the address on the network they share,
            // and nothing of the other network.
            #expect(try Self.lookUp(pier, in: onA, both) == [bothA])
            #expect(try Self.lookUp(pier, in: onB, both) == [bothB])
            #expect(try Self.lookUp(pier, in: onA, onB) == [])
            #expect(try Self.lookUp(pier, in: onB, onA) == [])
            let fromA = try Self.ask(pier, in: onA, server: "10.232.\(third).1", ["\(onB) A", "\(both) A"])
            #expect(fromA == [.nxdomain, .found([bothA])])
            try pier.mustPier(["rm", "-f", both, onA, onB])
            #expect(try pier.leftovers() == [])
        }
    }

    /// An internal network: no route, and even with one added by hand nothing is forwarded out or in
    /// (the `internal_bridges` drop); its containers still reach and resolve each other.
    @Test func internalNetworkForwardsNothingOutOrInEvenWithARouteButResolvesInside() throws {
        try Self.withNamedPier { pier, records in
            try withTestHosts(1) { hosts in
                // Another host the runtime host routes to directly.
                let outside = hosts[0]
                let third = Int.random(in: 0...255)
                try connect(pier.host, "out0", to: outside, "out1")
                try pier.host.mustRun(["ip", "addr", "add", "10.199.\(third).1/24", "dev", "out0"])
                try outside.mustRun(["ip", "addr", "add", "10.199.\(third).2/24", "dev", "out1"])
                try outside.mustRun(["ip", "route", "add", "10.234.\(third).0/24", "via", "10.199.\(third).1"])
                try outside.mustRun(["ip", "route", "add", "10.235.\(third).0/24", "via", "10.199.\(third).1"])

                try #require(
                    try Self.create(pier, records, "vault", ["--internal", "--subnet", "10.234.\(third).0/24"])
                        .succeeded)
                // The control: the same setup on an ordinary network does get out.
                try #require(
                    try Self.create(pier, records, "open", ["--subnet", "10.235.\(third).0/24"]).succeeded)
                let one = pier.name("one")
                let two = pier.name("two")
                let control = pier.name("control")
                try pier.mustPier(["run", "-d", "--name", one, "--net", "vault", "sleep", "300"])
                try pier.mustPier(["run", "-d", "--name", two, "--net", "vault", "sleep", "300"])
                try pier.mustPier(["run", "-d", "--name", control, "--net", "open", "sleep", "300"])
                let oneAddress = try #require(try NetworkManagementTests.address(pier, one, "eth0"))
                let controlAddress = try #require(try NetworkManagementTests.address(pier, control, "eth0"))
                try pier.mustPier([
                    "exec", one, "ip", "route", "add", "10.199.\(third).0/24", "via", "10.234.\(third).1",
                ])

                #expect(try pier.pier(["exec", control, "ping", "-c1", "-W2", "10.199.\(third).2"]).succeeded)
                #expect(!(try pier.pier(["exec", one, "ping", "-c1", "-W2", "10.199.\(third).2"]).succeeded))
                #expect(outside.canPing(controlAddress))
                #expect(!outside.canPing(oneAddress), "nothing is forwarded into an internal network")
                // Between internal and ordinary networks neither.
                #expect(!(try pier.pier(["exec", one, "ping", "-c1", "-W1", controlAddress]).succeeded))

                let bridges = try pier.host.nftJSON(["list", "set", "inet", "pier", "internal_bridges"])
                let set = bridges.compactMap { $0["set"] as? [String: Any] }.first
                #expect((set?["elem"] as? [Any])?.count == 1, "\(bridges)")

                // Rebuilt with the rest of Pier's tables after another program wiped them.
                try pier.host.mustRun(["nft", "delete", "table", "inet", "pier"])
                try pier.mustPier(["firewall-reload"])
                let restored = try pier.host.nftJSON(["list", "set", "inet", "pier", "internal_bridges"])
                #expect(
                    (restored.compactMap { $0["set"] as? [String: Any] }.first?["elem"] as? [Any])?.count == 1,
                    "\(restored)")
                #expect(!(try pier.pier(["exec", one, "ping", "-c1", "-W2", "10.199.\(third).2"]).succeeded))

                // Inside: by name, and the gateway's name server answers (with nothing forwarded).
                let twoAddress = try #require(try NetworkManagementTests.address(pier, two, "eth0"))
                #expect(try Self.lookUp(pier, in: one, two) == [twoAddress])
                #expect(try pier.pier(["exec", one, "ping", "-c1", "-W2", two]).succeeded)
                try pier.mustPier(["rm", "-f", one, two, control])
                #expect(try pier.leftovers() == [])
            }
        }
    }

    @Test func badInputIsRefusedClearlyAndNothingIsHalfMade() throws {
        try Self.withNamedPier { pier, records in
            let third = Int.random(in: 0...255)
            try #require(try Self.create(pier, records, "good", ["--subnet", "10.236.\(third).0/24"]).succeeded)
            let cases: [([String], String)] = [
                (["--subnet", "10.237.\(third).0/24", "--dns", "not-an-address"], "invalid --dns"),
                (["--internal", "--subnet", "10.237.\(third).0/24", "--dns", "192.0.2.1"], "forwards no query"),
                (["--subnet", "10.237.\(third).0/24", "--dns-opt", "colour=blue"], "not a key of the name service"),
                (["--subnet", "10.237.\(third).0/24", "--dns-search", "bad domain"], "invalid --dns-search"),
                (["--subnet", "10.236.\(third).128/25"], "network good"),
            ]
            for (options, message) in cases {
                let refused = try Self.create(pier, records, "bad", options)
                #expect(!refused.succeeded && refused.stderr.contains(message), "\(options): \(refused.stderr)")
                #expect(!FileManager.default.fileExists(atPath: pier.configDirectory + "/60-bad.conflist"))
            }
            let invalidName = try Self.create(pier, records, "bad name", [])
            #expect(!invalidName.succeeded && invalidName.stderr.contains("invalid name"), "\(invalidName.stderr)")

            // An alias the name service refuses: the run fails and leaves nothing behind.
            let refused = try pier.pier([
                "run", "-d", "--name", pier.name("alias"), "--net", "good", "--alias", "no/slash", "sleep", "300",
            ])
            #expect(!refused.succeeded && refused.stderr.contains("no/slash"), "\(refused.stderr)")
            #expect(try pier.leftovers() == [])
            let dnsRecords = (try? FileManager.default.contentsOfDirectory(atPath: records + "/good")) ?? []
            #expect(dnsRecords.isEmpty, "\(dnsRecords)")
            let badDNS = try pier.pier(["run", "--name", pier.name("x"), "--dns", "nope", "--net", "good", "true"])
            #expect(!badDNS.succeeded && badDNS.stderr.contains("invalid --dns"), "\(badDNS.stderr)")

            // A network in use is not removed, and says by whom.
            let user = pier.name("user")
            try pier.mustPier(["run", "-d", "--name", user, "--net", "good", "sleep", "300"])
            let busy = try pier.pier(["network", "rm", "good"])
            #expect(!busy.succeeded && busy.stderr.contains(user), "\(busy.stderr)")
            #expect(FileManager.default.fileExists(atPath: pier.configDirectory + "/60-good.conflist"))
            try pier.mustPier(["rm", "-f", user])
            #expect(try pier.leftovers() == [])
        }
    }

    /// `--dns`, `--dns-search`, `--dns-option` per network and per container: the container's
    /// resolv.conf, and where its forwarded queries go (a fake resolver on another test host).
    @Test func dnsOptionsPerNetworkAndPerContainer() throws {
        try Self.withNamedPier { pier, records in
            try withTestHosts(1) { hosts in
                let third = Int.random(in: 0...255)
                try connect(pier.host, "up0", to: hosts[0], "up1")
                try pier.host.mustRun(["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"])
                try hosts[0].mustRun(["ip", "addr", "add", "192.0.2.53/24", "dev", "up1"])
                try hosts[0].mustRun(["ip", "addr", "add", "192.0.2.54/24", "dev", "up1"])
                let networkUpstream = try FakeUpstream(in: hosts[0], address: "192.0.2.53")
                defer { networkUpstream.stop() }
                let containerUpstream = try FakeUpstream(in: hosts[0], address: "192.0.2.54")
                defer { containerUpstream.stop() }

                try #require(
                    try Self.create(
                        pier, records, "tuned",
                        [
                            "--subnet", "10.238.\(third).0/24", "--dns", "192.0.2.53", "--dns-search", "example.test",
                            "--dns-option", "ndots:2",
                        ]
                    ).succeeded)
                let plain = pier.name("plain")
                let own = pier.name("own")
                try pier.mustPier(["run", "-d", "--name", plain, "--net", "tuned", "sleep", "300"])
                try pier.mustPier([
                    "run", "-d", "--name", own, "--net", "tuned", "--dns", "192.0.2.54", "--dns-search", "corp.test",
                    "--dns-option", "timeout:1", "sleep", "300",
                ])
                let plainResolv = try pier.mustPier(["exec", plain, "cat", "/etc/resolv.conf"]).stdout
                #expect(
                    plainResolv
                        == "search dns.pier example.test\nnameserver 10.238.\(third).1\noptions ndots:2\n",
                    "\(plainResolv)")
                let ownResolv = try pier.mustPier(["exec", own, "cat", "/etc/resolv.conf"]).stdout
                #expect(
                    ownResolv
                        == "search dns.pier example.test corp.test\nnameserver 10.238.\(third).1\n"
                        + "options ndots:2 timeout:1\n",
                    "\(ownResolv)")

                let server = "10.238.\(third).1"
                #expect(
                    try Self.ask(pier, in: plain, server: server, ["upstream.example A"]) == [.found(["198.51.100.7"])])
                #expect(networkUpstream.questions == ["upstream.example"])
                #expect(containerUpstream.questions.isEmpty)
                #expect(
                    try Self.ask(pier, in: own, server: server, ["upstream.example A"]) == [.found(["198.51.100.7"])])
                #expect(containerUpstream.questions == ["upstream.example"])
                #expect(networkUpstream.questions.count == 1)
                // Names of the network are still answered for the container with its own resolvers.
                let plainAddress = try #require(try NetworkManagementTests.address(pier, plain, "eth0"))
                #expect(try Self.lookUp(pier, in: own, plain) == [plainAddress])

                // Without a name service: --dns straight into resolv.conf, or the host's with the
                // search domains and options added.
                try pier.addNetwork("bare", subnet: "10.239.\(third).0/24")
                let direct = pier.name("direct")
                let hostLike = pier.name("hostlike")
                try pier.mustPier([
                    "run", "-d", "--name", direct, "--net", "bare", "--dns", "192.0.2.54", "--dns-option", "rotate",
                    "sleep", "300",
                ])
                try pier.mustPier([
                    "run", "-d", "--name", hostLike, "--net", "bare", "--dns-search", "corp.test", "sleep", "300",
                ])
                let directResolv = try pier.mustPier(["exec", direct, "cat", "/etc/resolv.conf"]).stdout
                #expect(directResolv == "nameserver 192.0.2.54\noptions rotate\n", "\(directResolv)")
                var hostResolv = try String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)
                if !hostResolv.isEmpty && !hostResolv.hasSuffix("\n") { hostResolv += "\n" }
                let hostLikeResolv = try pier.mustPier(["exec", hostLike, "cat", "/etc/resolv.conf"]).stdout
                #expect(hostLikeResolv == hostResolv + "search corp.test\n", "\(hostLikeResolv)")
                try pier.mustPier(["rm", "-f", plain, own, direct, hostLike])
                #expect(try pier.leftovers() == [])
            }
        }
    }
}
