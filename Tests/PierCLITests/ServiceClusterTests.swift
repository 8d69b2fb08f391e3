import Foundation
import PierTestSupport
import Testing

/// A service across three test hosts on one overlay network with etcd and `pier agent` on each:
/// members on two hosts, a client on the third, `pier` on every host as a user would run it.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(5)))
struct ServiceClusterTests {
    /// Three hosts on an underlay switch (etcd on the switch), each with its own `pier` and
    /// agent, and one overlay network `N` with names on every host.
    final class Cluster: @unchecked Sendable {
        let fabric: Underlay
        var switchHost: TestHost { fabric.switchHost }
        var hosts: [TestHost] { fabric.hosts }
        var piers: [PierHarness] = []
        var agents: [Process] = []
        var etcd: EtcdServer?
        let underlay = "10.237.\(Int.random(in: 0...255))"
        let subnet = "10.236.\(Int.random(in: 0...255))"
        let vni = Int.random(in: 5000...5999)
        let network = "ovs\(uniqueTag(4))"
        let runDirectory = NSTemporaryDirectory() + "pier-t-svc-run-\(uniqueTag())"

        init() throws {
            fabric = try Underlay(hosts: 3, prefix: underlay)
            do {
                etcd = try EtcdServer(in: switchHost, address: fabric.switchAddress)
                for (index, host) in hosts.enumerated() {
                    try host.mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
                    let pier = try PierHarness(in: host)
                    piers.append(pier)
                    for plugin in ["vxlan-overlay", "names"] {
                        try FileManager.default.createSymbolicLink(
                            atPath: pier.pluginDirectory + "/" + plugin,
                            withDestinationPath: builtProductsDirectory + "/" + plugin)
                    }
                    try writeConflist(host: index)
                }
                for index in 0..<3 { try startAgent(index) }
            } catch {
                tearDown()
                throw error
            }
        }

        func records(_ index: Int) -> String { piers[index].directory + "/dns" }

        func writeConflist(host index: Int) throws {
            let store: [String: Any] = [
                "type": "etcd", "endpoints": [etcd?.clientURL ?? ""], "prefix": "/svc-\(network)", "host": "h\(index)",
            ]
            let list: [String: Any] = [
                "cniVersion": "1.1.0", "name": network,
                "plugins": [
                    [
                        "type": "vxlan-overlay", "vni": vni, "underlay": "eth0", "store": store, "runDir": runDirectory,
                        "isDefaultGateway": true, "ipMasq": true, "ipam": ["type": "ipam", "subnet": "\(subnet).0/24"],
                    ],
                    [
                        "type": "names", "dataDir": records(index), "store": store,
                        "capabilities": ["aliases": true, "dns": true],
                    ],
                ],
            ]
            let data = try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys])
            try data.write(to: URL(fileURLWithPath: piers[index].configDirectory + "/50-\(network).conflist"))
        }

        func startAgent(_ index: Int) throws {
            try FileManager.default.createDirectory(atPath: records(index), withIntermediateDirectories: true)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            process.arguments = [
                "--net=\(hosts[index].path)", builtProductsDirectory + "/pier", "agent", "--network", network,
                "--host", "h\(index)", "--run-dir", runDirectory, "--store-type", "etcd", "--store-endpoints",
                etcd?.clientURL ?? "", "--store-prefix", "/svc-\(network)", "--names-dir", records(index),
                "--host-timeout", "3", "--config-dir", piers[index].configDirectory,
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            agents.append(process)
        }

        func tearDown() {
            for pier in piers { pier.cleanUp() }
            for agent in agents where agent.isRunning { kill(agent.processIdentifier, SIGKILL) }
            for pier in piers.indices { NameResolutionTests.killNameServer(records(pier)) }
            etcd?.stop()
            fabric.destroy()
            try? FileManager.default.removeItem(atPath: runDirectory)
        }
    }

    /// A member answering each connection with its name (HTTP/0.9 style: curl --http0.9 reads it).
    static func member(_ pier: PierHarness, _ name: String, network: String, _ extra: [String] = []) throws {
        try pier.mustPier(
            ["run", "-d", "--name", name, "--net", network, "--service", "web"] + extra + [
                "socat", "TCP-LISTEN:80,reuseaddr,fork,backlog=512", "EXEC:echo \(name)",
            ])
    }

    /// `count` connections from `client` to `address:port` with bash's /dev/tcp (no process per
    /// connection), one answer line each, "failed" for none.
    static func connections(_ pier: PierHarness, from client: String, to address: String, port: Int = 80, count: Int)
        throws -> [String]
    {
        let script = """
            for i in $(seq \(count)); do
              if exec 3<>/dev/tcp/\(address)/\(port); then read -r -t 10 line <&3 && echo "$line" || echo failed; exec 3<&-
              else echo failed; fi
            done
            """
        let result = try pier.pier(["exec", client, "bash", "-c", script], timeout: 240)
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// The members a host's whole-VIP slots DNAT to.
    static func slotMembers(_ host: TestHost) throws -> Set<String> {
        let listing = try host.nftJSON(["list", "map", "inet", "pier", "service_vips_v4"])
        let elements = listing.compactMap { ($0["map"] as? [String: Any])?["elem"] as? [Any] }.flatMap { $0 }
        return Set(elements.compactMap { ($0 as? [Any])?.last as? String })
    }

    @Test func aServiceSpansHostsItsVIPSpreadsEvenlyAndAKilledMemberLeavesEveryHostWithinASecond() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") else { return }
        let cluster = try Cluster()
        defer { cluster.tearDown() }
        let (h0, h1, h2) = (cluster.piers[0], cluster.piers[1], cluster.piers[2])
        let first = h0.name("web-a")
        let second = h1.name("web-b")
        try Self.member(h0, first, network: cluster.network, ["-p", "18080:80"])
        try Self.member(h1, second, network: cluster.network)
        let client = h2.name("client")
        try h2.mustPier(["run", "-d", "--name", client, "--net", cluster.network, "sleep", "600"])

        // One VIP for the service on every host, leased once for the cluster.
        let listings = try cluster.piers.map { try $0.mustPier(["service", "ls"]).stdout }
        let vip = try #require(
            listings[0].split(separator: "\n").dropFirst().first?.split(separator: " ", omittingEmptySubsequences: true)
                .dropFirst(3).first.map(String.init))
        #expect(vip.hasPrefix(cluster.subnet + "."), "\(listings[0])")
        #expect(listings[1].contains(vip), "\(listings[1])")
        // The member-less host learns the service from its agent.
        #expect(eventually(5) { (try? h2.mustPier(["service", "ls"]).stdout.contains(vip)) == true })
        #expect(
            eventually(5) {
                (try? NameResolutionTests.lookUp(h2, in: client, "web")) == [vip]
            }, "web resolves to the VIP on the client's host")
        // (Retried: under a loaded machine a single request may outlast curl's deadline.)
        var page = ""
        _ = eventually(20) {
            let fetched = try? h2.pier(["exec", client, "curl", "-s", "--http0.9", "-m", "10", "http://web/"])
            page = fetched?.stdout.trimmingCharacters(in: .newlines) ?? ""
            return fetched?.succeeded == true
        }
        #expect([first, second].contains(page), "curl http://web/ on the client's host: \(page)")

        // `run -d` returns before a member listens: both answer first.
        _ = eventually(15) {
            Set((try? Self.connections(h2, from: client, to: vip, count: 8)) ?? []) == Set([first, second])
        }
        // 3,000 connections from the third host: each member within ±5 % of half.
        let answers = try Self.connections(h2, from: client, to: vip, count: 3000)
        var counts: [String: Int] = [:]
        for answer in answers { counts[answer, default: 0] += 1 }
        #expect(answers.count == 3000 && counts["failed"] == nil, "\(counts)")
        for member in [first, second] { #expect((1425...1575).contains(counts[member] ?? 0), "\(member): \(counts)") }

        // The routing mesh: port 18080 on the member-less host reaches a member.
        let gateway = "\(cluster.subnet).1"
        let mesh = try h2.pier([
            "exec", client, "sh", "-c",
            "for i in $(seq 10); do socat -T2 - TCP:\(gateway):18080,connect-timeout=2 </dev/null || echo failed; done",
        ]).stdout.split(separator: "\n").map(String.init)
        #expect(mesh.count == 10 && mesh.allSatisfy { [first, second].contains($0) }, "\(mesh)")
        // And from outside every host: the switch connects to the member-less host's own address.
        let outside = try cluster.switchHost.run(
            [
                "sh", "-c",
                "for i in $(seq 10); do socat -T2 - TCP:\(cluster.underlay).3:18080,connect-timeout=2 </dev/null || echo failed; done",
            ], timeout: 60
        ).stdout.split(separator: "\n").map(String.init)
        #expect(outside.count == 10 && outside.allSatisfy { [first, second].contains($0) }, "\(outside)")

        // Killed on its host: every host stops choosing it within a second; nothing fails after.
        try h0.mustPier(["kill", first])
        usleep(1_000_000)
        let after = try Self.connections(h2, from: client, to: vip, count: 200)
        #expect(after.count == 200 && after.allSatisfy { $0 == second }, "\(Set(after))")

        // Started again it is back; then a host that stops beating (its agent killed) has its
        // member taken out of the other hosts' choice after the host timeout (3 s here).
        try h0.mustPier(["start", first])
        let firstAddress = try #require(try h0.address(of: first))
        let secondAddress = try #require(try h1.address(of: second))
        #expect(eventually(3) { (try? Self.slotMembers(cluster.hosts[2])) == [firstAddress, secondAddress] })
        kill(cluster.agents[1].processIdentifier, SIGKILL)
        #expect(eventually(8) { (try? Self.slotMembers(cluster.hosts[2])) == [firstAddress] })
        let survivors = try Self.connections(h2, from: client, to: vip, count: 50)
        #expect(survivors.count == 50 && survivors.allSatisfy { $0 == first }, "\(Set(survivors))")

        // Removed everywhere: the VIP is released once, every host's service state goes.
        try h0.mustPier(["rm", "-f", first])
        try h1.mustPier(["rm", "-f", second])
        #expect(eventually(5) { (try? h2.mustPier(["service", "ls"]).stdout.contains(vip)) == false })
        try h2.mustPier(["rm", "-f", client])
        for pier in cluster.piers {
            let left = try pier.leftovers()
            #expect(left.isEmpty, "\(pier.host.name): \(left)")
        }
    }
}
