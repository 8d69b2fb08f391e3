import Foundation
import PierTestSupport
import Testing

/// Pier's container traffic keeps working beside another firewall whose forward chain drops by
/// default (iptables-nft's `FORWARD` policy DROP as Docker sets it, a hand-written `inet filter`
/// table), without anyone editing that firewall, and that firewall still drops what is not
/// Pier's. Everything runs in test hosts: the harness's host, an "outside" namespace behind its
/// uplink (the internet, and the client of published ports) and a "side" namespace the host
/// also routes to (traffic that is not Pier's). The root namespace's ruleset is never touched.
@Suite(.serialized)
struct ForeignFirewallTests {
    static let mark = "0x1000000/0x1000000"
    static let comment = "pier: accept traffic of Pier containers (marked by inet pier forward_mark)"

    /// A Pier network with two containers (a web server with a published port, and a client),
    /// an outside namespace with an echo server, and a side namespace.
    final class World {
        let pier: PierHarness
        let outside: TestHost
        let side: TestHost
        let echo: PeerEchoServer
        let sideEcho: PeerEchoServer
        let web: String
        let client: String
        let webAddress: String
        let hostPort = Int.random(in: 20000...30000)
        let subnet: String

        init(_ pier: PierHarness, network: String) throws {
            self.pier = pier
            outside = try TestHost()
            side = try TestHost()
            let host = pier.host
            try connect(host, "uplink", to: outside, "wan")
            try host.mustRun(["ip", "addr", "add", "198.51.100.1/24", "dev", "uplink"])
            try outside.mustRun(["ip", "addr", "add", "198.51.100.2/24", "dev", "wan"])
            try host.mustRun(["ip", "-6", "addr", "add", "2001:db8:64::1/64", "dev", "uplink", "nodad"])
            try outside.mustRun(["ip", "-6", "addr", "add", "2001:db8:64::2/64", "dev", "wan", "nodad"])
            try connect(host, "sidelink", to: side, "lan")
            try host.mustRun(["ip", "addr", "add", "192.0.2.1/24", "dev", "sidelink"])
            try side.mustRun(["ip", "addr", "add", "192.0.2.2/24", "dev", "lan"])
            try side.mustRun(["ip", "route", "add", "default", "via", "192.0.2.1"])
            try outside.mustRun(["ip", "route", "add", "192.0.2.0/24", "via", "198.51.100.1"])
            try host.mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            // Same-bridge traffic passes the IP forward hook too, as on a host with Docker.
            try host.mustRun(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])
            echo = try PeerEchoServer(in: outside, port: 7001)
            sideEcho = try PeerEchoServer(in: side, port: 7002)

            let third = Int.random(in: 0...255)
            subnet = "10.226.\(third).0/24"
            // Dual-stack, so ip6tables' FORWARD chain matters too.
            let ipam = PierHarness.ipamPlugin
            let list: [String: Any] = [
                "cniVersion": ipam.cniVersion, "name": network,
                "plugins": [
                    [
                        "type": "bridge", "bridge": "pbr\(uniqueTag(6))", "isGateway": true, "isDefaultGateway": true,
                        "ipMasq": true,
                        "ipam": [
                            "type": ipam.type, "dataDir": pier.leaseDirectory,
                            "ranges": [[["subnet": subnet]], [["subnet": "fd26:\(third)::/64"]]],
                        ],
                    ],
                    ["type": "portmap", "capabilities": ["portMappings": true]],
                ],
            ]
            try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys])
                .write(to: URL(fileURLWithPath: pier.configDirectory + "/50-\(network).conflist"))
            // The outside can route to the containers directly (not through a published port).
            try outside.mustRun(["ip", "route", "add", subnet, "via", "198.51.100.1"])
            web = pier.name("web")
            client = pier.name("client")
            try pier.mustPier([
                "run", "-d", "--name", web, "--net", network, "-p", "\(hostPort):8080", "python3", "-m",
                "http.server", "8080",
            ])
            try pier.mustPier(["run", "-d", "--name", client, "--net", network, "sleep", "600"])
            webAddress = try #require(try pier.address(of: web))
        }

        func destroy() {
            echo.stop()
            sideEcho.stop()
            outside.destroy()
            side.destroy()
        }

        /// The container's outbound connection, masqueraded: the outside sees the uplink address.
        var outbound: Bool {
            let result = try? pier.pier([
                "exec", client, "curl", "-s", "--http0.9", "-m", "2", "http://198.51.100.2:7001/",
            ])
            return result?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "198.51.100.1"
        }

        /// The same over IPv6 (masqueraded to the uplink's IPv6 address).
        var outboundV6: Bool {
            let result = try? pier.pier([
                "exec", client, "curl", "-s", "--http0.9", "-m", "2", "http://[2001:db8:64::2]:7001/",
            ])
            return result?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "2001:db8:64::1"
        }

        /// One container reaches the other on their bridge.
        var containerToContainer: Bool {
            let result = try? pier.pier(["exec", client, "curl", "-s", "-m", "2", "http://\(webAddress):8080/"])
            return result?.stdout.contains("Directory") == true
        }

        /// The outside reaches the web server through its published port on the uplink address.
        var published: Bool {
            httpGet(from: outside, "http://198.51.100.1:\(hostPort)/")?.contains("Directory") == true
        }

        /// Pier's traffic, all of it.
        var piersTrafficFlows: Bool { outbound && outboundV6 && containerToContainer && published }

        /// Traffic the host forwards that is not Pier's: outside to side.
        var sideReachable: Bool { askPeerAddress(from: outside, to: "192.0.2.2", port: 7002, timeout: 1) != nil }

        /// A new connection from the outside straight to the container's address: no published port.
        var containerReachableUnpublished: Bool {
            httpGet(from: outside, "http://\(webAddress):8080/", timeout: 1)?.contains("Directory") == true
        }

        /// Pier's accept rules in `family table chain`, as `nft -j` lists them.
        func pierAccepts(_ family: String, _ table: String, _ chain: String) throws -> [[String: Any]] {
            try pier.host.nftJSON(["list", "chain", family, table, chain]).compactMap { $0["rule"] as? [String: Any] }
                .filter { rule in
                    let text = String(
                        decoding: try JSONSerialization.data(withJSONObject: rule["expr"] ?? []), as: UTF8.self)
                    return text.contains("16777216") && text.contains("accept")
                }
        }

        /// `pier doctor --json`'s host.firewall finding about `chain`.
        func doctorFinding(_ chain: String) throws -> [String: Any]? {
            let result = try pier.pier(["doctor", "--json"])
            let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            return (report?["findings"] as? [[String: Any]] ?? []).first {
                $0["check"] as? String == "host.firewall" && $0["subject"] as? String == chain
            }
        }

        func rules(_ family: String, _ table: String, _ chain: String) throws -> [[String: Any]] {
            try pier.host.nftJSON(["list", "chain", family, table, chain]).compactMap { $0["rule"] as? [String: Any] }
        }

        /// Starts `pier firewall reload --watch`; stopped by the returned closure.
        func startWatcher() throws -> () -> Void {
            let log = pier.directory + "/watch-\(uniqueTag(4)).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let watcher = Process()
            watcher.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            watcher.arguments = pier.command(["firewall", "reload", "--watch"])
            watcher.standardOutput = FileHandle.nullDevice
            watcher.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            try watcher.run()
            let stop = {
                // SIGKILL: the test runner's children may inherit SIGTERM as ignored.
                kill(watcher.processIdentifier, SIGKILL)
                watcher.waitUntilExit()
            }
            let watching = eventually(10) {
                (try? String(contentsOfFile: log, encoding: .utf8))?.contains("watching nftables") == true
            }
            if !watching { stop() }
            try #require(watching, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            return stop
        }

        /// Seconds until `condition` holds (polled every 20 ms), or nil after `limit`.
        func secondsUntil(_ limit: Double = 3, _ condition: () throws -> Bool) rethrows -> Double? {
            let start = Date()
            while Date().timeIntervalSince(start) < limit {
                if try condition() { return Date().timeIntervalSince(start) }
                usleep(20_000)
            }
            return nil
        }
    }

    private func withWorld(_ network: String, _ body: (World) throws -> Void) throws {
        try withPier { pier in
            let world = try World(pier, network: network)
            defer { world.destroy() }
            // Before any other firewall: everything flows, the side too (so its check can fail).
            // The web server is up (python starts slowly on a loaded machine).
            try #require(eventually(30) { world.containerToContainer })
            #expect(world.published)
            #expect(world.outbound)
            #expect(world.outboundV6)
            #expect(world.sideReachable)
            #expect(world.containerReachableUnpublished)
            try body(world)
            try pier.mustPier(["rm", "-f", world.web, world.client])
            #expect(try pier.leftovers() == [])
            // Uninstalling takes every trace of Pier out of nftables, other tables included.
            let removed = try pier.mustPier(["firewall", "remove"]).stdout
            #expect(removed.contains("deleted table inet pier"), "\(removed)")
            let ruleset = try pier.host.mustRun(["nft", "list", "ruleset"]).stdout
            #expect(!ruleset.contains("pier") && !ruleset.contains("0x01000000"), "\(ruleset)")
        }
    }

    /// Docker's iptables: `FORWARD` policy DROP in `ip filter` and `ip6 filter`, set while
    /// containers run. The watcher puts Pier's rule in within a second; `iptables -F` and an
    /// `iptables-save | iptables-restore` round trip are survived without duplicates.
    @Test(.enabled(if: PierHarness.portmapBuilt))
    func iptablesForwardPolicyDrop() throws {
        try withWorld("t226a") { world in
            let stopWatcher = try world.startWatcher()
            defer { stopWatcher() }
            let host = world.pier.host
            let start = Date()
            try host.mustRun(["iptables-nft", "-P", "FORWARD", "DROP"])
            try host.mustRun(["ip6tables-nft", "-P", "FORWARD", "DROP"])
            let inserted = try world.secondsUntil {
                try world.pierAccepts("ip", "filter", "FORWARD").count == 1
                    && world.pierAccepts("ip6", "filter", "FORWARD").count == 1
            }
            #expect(inserted != nil && inserted! < 1, "Pier's accept rule after \(String(describing: inserted)) s")
            print("iptables -P FORWARD DROP: Pier's accept rule in place after \(Date().timeIntervalSince(start)) s")
            #expect(world.piersTrafficFlows)
            // Not Pier's: still dropped.
            #expect(!world.sideReachable)
            #expect(!world.containerReachableUnpublished)
            // iptables itself reads Pier's rule as a mark match with its comment.
            let listing = try host.mustRun(["iptables-nft", "-L", "FORWARD", "-n"]).stdout
            #expect(listing.contains("mark match \(Self.mark)") && listing.contains(Self.comment), "\(listing)")
            // doctor sees the drop policy and Pier's rule in it.
            #expect(try world.doctorFinding("ip filter FORWARD")?["severity"] as? String == "ok")

            // iptables -F: the rule comes back within a second.
            try host.mustRun(["iptables-nft", "-F"])
            let restored = try world.secondsUntil { try world.pierAccepts("ip", "filter", "FORWARD").count == 1 }
            #expect(restored != nil && restored! < 1, "restored after \(String(describing: restored)) s")
            print("iptables -F: Pier's accept rule restored after \(restored ?? -1) s")
            #expect(world.piersTrafficFlows)
            #expect(!world.sideReachable)

            // A save/restore round trip turns the comment into an xt match: still Pier's rule,
            // found by its match, never doubled (neither by the watcher nor by a new ADD).
            let saved = try host.mustRun(["iptables-nft-save"]).stdout
            #expect(saved.contains("-m mark --mark \(Self.mark)"), "\(saved)")
            try host.mustRun(["iptables-nft-restore"], stdin: saved)
            let other = world.pier.name("late")
            try world.pier.mustPier(["run", "-d", "--name", other, "--net", "t226a", "sleep", "60"])
            usleep(600_000)
            #expect(try world.pierAccepts("ip", "filter", "FORWARD").count == 1)
            try world.pier.mustPier(["rm", "-f", other])
            #expect(world.piersTrafficFlows)

            // Removing Pier's state takes its rule out of other tables too; the watcher goes first.
            stopWatcher()
            try world.pier.mustPier(["firewall", "remove", "--accept-rules-only"])
            #expect(try world.pierAccepts("ip", "filter", "FORWARD").isEmpty)
            #expect(try world.pierAccepts("ip6", "filter", "FORWARD").isEmpty)
            #expect(!world.outbound)
            #expect(!world.outboundV6)
            let missing = try world.doctorFinding("ip filter FORWARD")
            #expect(missing?["severity"] as? String == "error", "\(String(describing: missing))")
            #expect((missing?["fix"] as? String)?.contains("pier firewall reload") == true)
            try world.pier.mustPier(["firewall", "reload"])
            #expect(try world.pierAccepts("ip", "filter", "FORWARD").count == 1)
            #expect(world.piersTrafficFlows)
        }
    }

    /// A hand-written `inet filter` table with a drop policy, and another chain that ends in an
    /// unconditional drop, added while containers run: `pier firewall reload` puts Pier's rule
    /// last in the first and right before the final drop in the second; the table's own rules
    /// keep deciding first.
    @Test(.enabled(if: PierHarness.portmapBuilt))
    func handWrittenInetDropTable() throws {
        try withWorld("t226b") { world in
            let host = world.pier.host
            try host.mustRun([
                "nft",
                "add table inet filter; "
                    + "add chain inet filter forward { type filter hook forward priority filter; policy drop; }; "
                    + "add rule inet filter forward ct state invalid drop; "
                    + "add chain inet filter late { type filter hook forward priority filter + 5; policy accept; }; "
                    + "add rule inet filter late iifname \"wan\" counter; "
                    + "add rule inet filter late counter drop",
            ])
            #expect(!world.outbound)
            #expect(!world.published)
            // With br_netfilter, same-bridge traffic is dropped too: the check below means something.
            #expect(!world.containerToContainer)
            try world.pier.mustPier(["firewall", "reload"])
            let forward = try world.rules("inet", "filter", "forward")
            #expect(forward.count == 2 && (forward.last?["comment"] as? String) == Self.comment, "\(forward)")
            let late = try world.rules("inet", "filter", "late")
            #expect(late.count == 3 && (late[1]["comment"] as? String) == Self.comment, "\(late)")
            #expect(world.piersTrafficFlows)
            #expect(!world.sideReachable)
            #expect(!world.containerReachableUnpublished)
            // Idempotent: a second reload changes nothing.
            try world.pier.mustPier(["firewall", "reload"])
            #expect(try world.rules("inet", "filter", "forward").count == 2)
            #expect(try world.rules("inet", "filter", "late").count == 3)
        }
    }

    /// `nft flush ruleset` followed by a foreign ruleset's reload (what `systemctl restart
    /// nftables` does): the watcher restores Pier's tables and its rule in the new drop table.
    @Test(.enabled(if: PierHarness.portmapBuilt))
    func flushRulesetAndForeignReload() throws {
        try withWorld("t226c") { world in
            let host = world.pier.host
            try host.mustRun([
                "nft",
                "add table inet filter; "
                    + "add chain inet filter forward { type filter hook forward priority filter; policy drop; }",
            ])
            try world.pier.mustPier(["firewall", "reload"])
            #expect(world.piersTrafficFlows)
            let stopWatcher = try world.startWatcher()
            defer { stopWatcher() }
            let ruleset = """
                flush ruleset
                table inet filter {
                    chain forward {
                        type filter hook forward priority filter; policy drop;
                        ct state established,related accept
                    }
                }
                """
            try host.mustRun(["nft", "-f", "-"], stdin: ruleset)
            let restored = try world.secondsUntil {
                try world.pierAccepts("inet", "filter", "forward").count == 1
                    && host.nftJSON(["list", "table", "inet", "pier"]).contains { $0["rule"] != nil }
            }
            #expect(restored != nil && restored! < 1, "restored after \(String(describing: restored)) s")
            print("flush ruleset + foreign reload: restored after \(restored ?? -1) s")
            #expect(eventually(2) { world.published })
            #expect(world.piersTrafficFlows)
            #expect(!world.sideReachable)
            #expect(!world.containerReachableUnpublished)
        }
    }
}
