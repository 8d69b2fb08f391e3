import Foundation
import PierTestSupport
import Testing

/// Pier's nftables state survives other software wiping it: `pier firewall-reload` rebuilds
/// `inet pier` / `bridge pier` from the result cache, `--watch` does so by itself, and neither
/// touches another table. Everything happens inside the harness's test host; the root
/// namespace's ruleset is never touched.
@Suite(.serialized)
struct FirewallReloadTests {
    /// A network with every plugin that keeps nftables state: bridge (masquerade, isolation,
    /// spoof check), portmap and firewall.
    private func addFullNetwork(_ pier: PierHarness, _ name: String) throws {
        try FileManager.default.createSymbolicLink(
            atPath: pier.pluginDirectory + "/firewall", withDestinationPath: builtProductsDirectory + "/firewall")
        let ipam = PierHarness.ipamPlugin
        let list: [String: Any] = [
            "cniVersion": ipam.cniVersion, "name": name,
            "plugins": [
                [
                    "type": "bridge", "bridge": "pbr\(uniqueTag(6))", "isGateway": true, "ipMasq": true,
                    "macspoofchk": true,
                    "ipam": [
                        "type": ipam.type, "dataDir": pier.leaseDirectory,
                        "ranges": [[["subnet": "10.227.\(Int.random(in: 0...255)).0/24"]]],
                    ],
                ],
                ["type": "portmap", "capabilities": ["portMappings": true]],
                ["type": "firewall", "ingressPolicy": "same-bridge"],
            ],
        ]
        let data = try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: pier.configDirectory + "/50-\(name).conflist"))
    }

    /// Pier's tables as `nft -j` shows them, without handles (a rebuilt object gets new ones),
    /// set elements sorted, rules kept in order per chain.
    private func pierTables(_ host: TestHost) throws -> [String] {
        var objects: [String] = []
        var rules: [String: [String]] = [:]
        for item in try host.nftJSON(["list", "ruleset"]) {
            guard let (kind, value) = item.first, var body = value as? [String: Any],
                body["table"] as? String == "pier" || body["name"] as? String == "pier" && kind == "table"
            else { continue }
            body["handle"] = nil
            if let elements = body["elem"] as? [Any] {
                body["elem"] = elements.map(canonical).sorted()
            }
            if kind == "rule" {
                rules["\(body["family"] ?? "") \(body["chain"] ?? "")", default: []].append(canonical(body))
            } else {
                objects.append(kind + " " + canonical(body))
            }
        }
        return objects.sorted()
            + rules.sorted { $0.key < $1.key }.map { "rules \($0.key): " + $0.value.joined(separator: " | ") }
    }

    private func canonical(_ value: Any) -> String {
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
    }

    /// A table of someone else's, with a chain, a rule and a set element.
    private func addForeignTable(_ host: TestHost) throws {
        try host.mustRun([
            "nft",
            "add table ip foreign; add set ip foreign blocked { type ipv4_addr; elements = { 192.0.2.9 }; }; "
                + "add chain ip foreign input { type filter hook input priority 10; policy accept; }; "
                + "add rule ip foreign input ip saddr @blocked drop comment \"someone else's\"",
        ])
    }

    /// A web server on a new full network, its port published and answering: (name, address,
    /// host port, published URL).
    private func runPublishedWebServer(_ pier: PierHarness, network: String) throws -> (
        name: String, address: String, hostPort: Int, published: String
    ) {
        try addFullNetwork(pier, network)
        let name = pier.name("web")
        let hostPort = Int.random(in: 20000...30000)
        try pier.mustPier([
            "run", "-d", "--name", name, "--net", network, "-p", "\(hostPort):8080", "python3", "-m", "http.server",
            "8080",
        ])
        let address = try #require(try pier.address(of: name))
        let gateway = address.split(separator: ".").dropLast().joined(separator: ".") + ".1"
        let published = "http://\(gateway):\(hostPort)/"
        #expect(eventually { httpGet(from: pier.host, published)?.contains("Directory") == true })
        return (name, address, hostPort, published)
    }

    private func foreignTable(_ host: TestHost) throws -> String {
        canonical(try host.nftJSON(["list", "table", "ip", "foreign"]))
    }

    @Test(.enabled(if: PierHarness.portmapBuilt))
    func reloadRebuildsPierTablesAfterAFlushAndLeavesOthersAlone() throws {
        try withPier { pier in
            let (name, address, hostPort, published) = try runPublishedWebServer(pier, network: "t227")
            let intact = try pierTables(pier.host)
            #expect(intact.contains { $0.contains("dnat_v4") && $0.contains("\(hostPort)") }, "\(intact)")
            #expect(intact.contains { $0.contains("spoofcheck_allowed") && $0.contains("elem") })
            #expect(intact.contains { $0.contains("fw_v4") && $0.contains(address) })

            // A reload over intact state changes nothing: `nft monitor` prints every change
            // committed to the ruleset, so it must stay silent about Pier's tables.
            let monitorLog = pier.directory + "/monitor.log"
            _ = FileManager.default.createFile(atPath: monitorLog, contents: nil)
            let monitor = Process()
            monitor.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            monitor.arguments = ["nsenter", "--net=\(pier.host.path)", "nft", "monitor"]
            monitor.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: monitorLog))
            try monitor.run()
            defer {
                kill(monitor.processIdentifier, SIGKILL)
                monitor.waitUntilExit()
            }
            usleep(300_000)
            try pier.mustPier(["firewall-reload"])  // the old spelling still works
            #expect(try pierTables(pier.host) == intact)
            // The monitor itself works: a foreign change shows up.
            try pier.host.mustRun(["nft", "add table ip monitored; delete table ip monitored"])
            #expect(
                eventually { (try? String(contentsOfFile: monitorLog, encoding: .utf8))?.contains("monitored") == true }
            )
            let seen = (try? String(contentsOfFile: monitorLog, encoding: .utf8)) ?? ""
            #expect(!seen.contains(" pier"), "a reload over intact state committed: \(seen)")

            // An attachment whose netns is gone (GC's work) is skipped: a copy of the live entry
            // under another container ID, pointing at a namespace that does not exist.
            let results = pier.cacheDirectory + "/results"
            let live = try #require(try FileManager.default.contentsOfDirectory(atPath: results).first)
            var entry = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: results + "/" + live)))
                    as? [String: Any])
            let goneID = "gone\(uniqueTag(6))"
            entry["containerId"] = goneID
            entry["netns"] = "/run/netns/pier-\(goneID)"
            let gonePath = results + "/t227-\(goneID)-eth0"
            try JSONSerialization.data(withJSONObject: entry).write(to: URL(fileURLWithPath: gonePath))
            defer { try? FileManager.default.removeItem(atPath: gonePath) }

            try pier.host.mustRun(["nft", "flush", "ruleset"])
            #expect(try pierTables(pier.host).isEmpty)
            #expect(httpGet(from: pier.host, published, timeout: 1) == nil)
            // doctor sees the wipe and names the command that repairs it.
            let fixes = try doctorFindings(pier).filter { ($0["check"] as? String)?.hasPrefix("missing.") == true }
                .compactMap { $0["fix"] as? String }
            #expect(!fixes.isEmpty && fixes.allSatisfy { $0.contains("pier firewall reload") }, "\(fixes)")
            try addForeignTable(pier.host)
            let foreign = try foreignTable(pier.host)

            let reload = try pier.mustPier(["firewall", "reload"])
            #expect(reload.stdout.contains("bridge, portmap, firewall"), "\(reload.stdout)")
            #expect(reload.stdout.contains("\(goneID)/eth0: skipped: its network namespace"), "\(reload.stdout)")
            #expect(try pierTables(pier.host) == intact)
            #expect(eventually { httpGet(from: pier.host, published)?.contains("Directory") == true })
            #expect(try foreignTable(pier.host) == foreign)

            try FileManager.default.removeItem(atPath: gonePath)
            try pier.mustPier(["rm", "-f", name])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test(.enabled(if: PierHarness.portmapBuilt))
    func watcherRestoresPierTablesWithinOneSecond() throws {
        try withPier { pier in
            let (name, _, _, published) = try runPublishedWebServer(pier, network: "t228")
            let intact = try pierTables(pier.host)

            let log = pier.directory + "/watch.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let watcher = Process()
            let command = pier.command(["firewall", "reload", "--watch"])
            watcher.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            watcher.arguments = command
            watcher.standardOutput = FileHandle.nullDevice
            watcher.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try watcher.run()
            defer {
                // SIGKILL: the test runner's children may inherit SIGTERM as ignored.
                kill(watcher.processIdentifier, SIGKILL)
                watcher.waitUntilExit()
            }
            let watching = eventually(10) {
                (try? String(contentsOfFile: log, encoding: .utf8))?.contains("watching nftables") == true
            }
            try #require(watching, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")

            for wipe in [
                ["flush", "ruleset"], ["delete", "table", "inet", "pier"],
                ["flush", "chain", "inet", "pier", "published"],
            ] {
                // Timed from the wipe itself, the foreign table's commands included.
                let start = Date()
                try pier.host.mustRun(["nft"] + wipe)
                try addForeignTable(pier.host)
                let restored = try eventually(3) { try pierTables(pier.host) == intact }
                let foreign = try foreignTable(pier.host)
                let now = try pierTables(pier.host)
                #expect(restored, "\(wipe): \(now)")
                let elapsed = Date().timeIntervalSince(start)
                #expect(elapsed < 1, "\(wipe) restored after \(elapsed) s")
                print("\(wipe.joined(separator: " ")): Pier's tables restored after \(elapsed) s")
                #expect(eventually { httpGet(from: pier.host, published)?.contains("Directory") == true })
                #expect(try foreignTable(pier.host) == foreign)
                try pier.host.mustRun(["nft", "delete", "table", "ip", "foreign"])
            }
            #expect(watcher.isRunning)
            try pier.mustPier(["rm", "-f", name])
        }
    }

    private func doctorFindings(_ pier: PierHarness) throws -> [[String: Any]] {
        let result = try pier.pier(["doctor", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        return report["findings"] as? [[String: Any]] ?? []
    }

    /// firewalld rejects forwarded traffic of interfaces in no zone, whatever its chain's
    /// policy: doctor reports it with the zone command, not rules firewalld's reload would drop.
    @Test func doctorReportsFirewalld() throws {
        try withPier { pier in
            try pier.addNetwork("t229", subnet: "10.229.\(Int.random(in: 0...255)).0/24")
            let name = pier.name("c")
            try pier.mustPier(["run", "-d", "--name", name, "--net", "t229", "sleep", "300"])
            try pier.host.mustRun([
                "nft",
                "add table inet firewalld; add chain inet firewalld filter_FORWARD { type filter hook forward priority filter + 10; policy accept; }",
            ])
            let finding = try #require(
                try doctorFindings(pier).first { $0["subject"] as? String == "inet firewalld filter_FORWARD" })
            #expect(finding["severity"] as? String == "warning")
            #expect(
                (finding["fix"] as? String)?.contains("firewall-cmd --permanent --zone=trusted --add-interface=pbr")
                    == true)
            // firewalld's chain ends in a reject: Pier's rule goes right before it, and doctor
            // says so while still recommending the zone.
            try pier.host.mustRun([
                "nft",
                "add rule inet firewalld filter_FORWARD ct state established,related accept; "
                    + "add rule inet firewalld filter_FORWARD reject with icmpx admin-prohibited",
            ])
            try pier.mustPier(["firewall", "reload"])
            let rules = try pier.host.nftJSON(["list", "chain", "inet", "firewalld", "filter_FORWARD"])
                .compactMap { $0["rule"] as? [String: Any] }
            #expect(rules.count == 3 && (rules[1]["comment"] as? String)?.hasPrefix("pier: accept") == true, "\(rules)")
            let again = try #require(
                try doctorFindings(pier).first { $0["subject"] as? String == "inet firewalld filter_FORWARD" })
            #expect(again["severity"] as? String == "warning")
            #expect((again["message"] as? String)?.contains("sits before its final reject") == true)
            try pier.mustPier(["rm", "-f", name])
        }
    }

    /// iptables-nft's `FORWARD` policy drop (what Docker sets) drops Pier's routed traffic
    /// whatever `inet pier` accepts: doctor names that chain and says Pier's accept rule is
    /// missing (a warning while Pier has no network), and what puts it there.
    @Test func doctorReportsAForeignDropPolicyForwardChain() throws {
        try withPier { pier in
            try pier.host.mustRun([
                "nft",
                "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }",
            ])
            let firewall = try doctorFindings(pier).filter { $0["check"] as? String == "host.firewall" }
            let finding = try #require(
                firewall.first { $0["subject"] as? String == "ip filter FORWARD" }, "\(firewall)")
            #expect(finding["severity"] as? String == "warning")
            #expect(
                (finding["message"] as? String)?.contains("accept rule for its own (marked) traffic is missing") == true
            )
            #expect((finding["fix"] as? String)?.contains("pier firewall reload") == true)
        }
    }
}
