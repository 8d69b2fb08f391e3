import Diagnostics
import Foundation
import NetNS
import PierTestSupport
import Testing

/// `pier doctor` against test hosts: each finding is provoked for real and must come with
/// the right fix; a healthy host has no errors.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct DoctorTests {
    @Test func healthyHostHasNoErrorsAndKernelFeaturesPass() throws {
        try withTestHosts(3) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.1.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(hosts[1])
            try scenario.add(hosts[2])
            let report = try scenario.doctor(probeKernel: true)
            show(report.render(style: Style(enabled: false)))
            #expect(report.errors.isEmpty, "\(report.summary)")
            for feature in ["bridge", "veth", "vxlan", "macvlan", "nf_tables", "nat", "conntrack"] {
                #expect(report.findings("kernel.\(feature)").first?.severity == .ok, "kernel.\(feature)")
            }
            #expect(
                report.findings.allSatisfy { !$0.check.hasPrefix("stale") || $0.severity == .ok }, "\(report.summary)")
            #expect(report.findings("host.ip_forward").first?.severity == .ok)
            #expect(report.findings("store.file").first?.severity == .ok)
            // JSON round-trips, and the text form names every check.
            let decoded = try JSONDecoder().decode(DoctorReport.self, from: Data(ReportJSON.encode(report).utf8))
            #expect(decoded == report)
            #expect(report.render(style: Style(enabled: false)).contains("kernel.vxlan"))
        }
    }

    @Test func containerNetnsDeletedBehindPiersBackLeavesStaleVethLeaseAndCache() throws {
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let scenario = try Scenario(host: host, subnet: "10.241.2.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(c1)
            try scenario.add(c2)
            let veth = try #require(scenario.hostVeth(of: c1))
            let address = try #require(scenario.address(of: c1))
            // Something still holds the namespace (a leaked process, say): its veth survives
            // although the runtime's netns path is gone.
            let held = try NetworkNamespace.open(path: c1.path)
            c1.destroy()
            let report = try scenario.doctor()
            withExtendedLifetime(held) {}
            show(report.render(style: Style(enabled: true)))

            let veths = report.findings("stale.veth")
            #expect(veths.map(\.subject) == [veth], "\(report.summary)")
            #expect(veths.first?.fix?.contains("ip link delete \(veth)") == true)
            let leases = report.findings("stale.lease")
            #expect(leases.map(\.subject) == ["\(scenario.network.dataDirectory)/\(scenario.network.name)/\(address)"])
            #expect(leases.first?.fix?.contains("pier gc") == true)
            let cache = report.findings("stale.cache")
            #expect(cache.map(\.subject) == [scenario.cachePath(c1)])
            #expect(cache.first?.message.contains("\(c1.path) is gone") == true)
            // c2 is healthy: nothing of it is reported.
            #expect(!report.summary.contains(c2.name.prefix(12)))
            #expect(report.errors.isEmpty, "\(report.summary)")
        }
    }

    @Test func strayAndMissingPublishedPortElements() throws {
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            let portmap: [String: Any] = ["type": "portmap", "capabilities": ["portMappings": true]]
            let scenario = try Scenario(host: host, subnet: "10.241.3.0/24", extraPlugins: [portmap])
            defer { scenario.cleanUp() }
            let mappings: [[String: Any]] = [
                ["hostPort": 8080, "containerPort": 80, "protocol": "tcp"],
                ["hostPort": 8081, "containerPort": 81, "protocol": "tcp"],
            ]
            try scenario.add(c1, portMappings: mappings)
            let address = try #require(scenario.address(of: c1))
            let owner = scenario.attachment(c1).ownerTag
            // 8081's element was flushed behind Pier's back; 9090 belongs to no attachment.
            try scenario.addDNAT([
                "tcp . 8080 comment \"\(owner)\" : \(address) . 80",
                "tcp . 9090 comment \"net=\(scenario.network.name) gone/eth0\" : \(address) . 90",
            ])
            let report = try scenario.doctor()

            let missing = report.findings("missing.published_port")
            #expect(missing.map(\.subject) == ["tcp 8081"], "\(report.summary)")
            #expect(missing.first?.severity == .error)
            // The elements are there, but nothing consults them: portmap's rules are missing.
            let rules = try #require(report.findings("missing.publish_rules").first)
            #expect(rules.severity == .error && rules.subject?.contains("pier:publish-v4") == true)
            let stray = report.findings("stale.element")
            #expect(stray.count == 1, "\(report.summary)")
            #expect(stray.first?.fix?.contains("nft delete element inet pier dnat_v4 { tcp . 9090 }") == true)
            // The fix works as written.
            if let fix = stray.first?.fix, let command = fix.split(separator: ":", maxSplits: 1).last {
                let words = command.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
                try host.mustRun(["nft", String(words[1])])
            }
            #expect(try scenario.doctor().findings("stale.element").isEmpty)
        }
    }

    @Test func freshHostWithoutContainersOnlyWarnsAboutForwarding() throws {
        try withTestHosts(1) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.11.0/24")
            defer { scenario.cleanUp() }
            try hosts[0].mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=0"])
            let report = try scenario.doctor()
            #expect(report.findings("host.ip_forward").first?.severity == .warning)
            #expect(report.errors.isEmpty, "\(report.summary)")
        }
    }

    @Test func ipForwardOffIsAnError() throws {
        try withTestHosts(2) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.4.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(hosts[1])
            try hosts[0].mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=0"])
            let finding = try #require(try scenario.doctor().findings("host.ip_forward").first)
            #expect(finding.severity == .error)
            #expect(finding.fix?.contains("sysctl -w net.ipv4.ip_forward=1") == true)
        }
    }

    @Test func dropPolicyForwardChainInAnotherTableConflicts() throws {
        try withTestHosts(2) { hosts in
            let host = hosts[0]
            let scenario = try Scenario(host: host, subnet: "10.241.5.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(hosts[1])
            try host.mustRun(["nft", "add table ip filter"])
            try host.mustRun([
                "nft", "add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }",
            ])
            let report = try scenario.doctor()
            let finding = try #require(report.findings("host.firewall").first)
            #expect(finding.severity == .error)
            #expect(finding.subject == "ip filter FORWARD")
            #expect(finding.message.contains("Pier's accept rule for its own (marked) traffic is missing"))
            #expect(finding.fix?.contains("pier firewall reload") == true)
            // Pier's own accepting forward chain is not a conflict.
            #expect(report.findings("host.firewall").count == 1)

            // A bridge-family forward chain sees the bridge as ibrname.
            try host.mustRun(["nft", "add table bridge filter"])
            try host.mustRun([
                "nft", "add chain bridge filter forward { type filter hook forward priority 0; policy drop; }",
            ])
            let bridgeFinding = try #require(
                try scenario.doctor().findings("host.firewall").first { $0.subject == "bridge filter forward" })
            #expect(bridgeFinding.fix?.contains("ibrname \"\(scenario.bridge)\" accept") == true)
            #expect(bridgeFinding.message.contains("one bridge"))
            try host.mustRun(["nft", "delete table bridge filter"])

            // With br_netfilter on, the drop policy also splits containers of one bridge.
            try host.mustRun(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"])
            let bridged = try #require(try scenario.doctor().findings("host.br_netfilter").first)
            #expect(bridged.severity == .error)
            #expect(bridged.fix?.contains("bridge-nf-call-iptables=0") == true)
            try host.mustRun(["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"])
            #expect(try scenario.doctor().findings("host.br_netfilter").first?.severity == .ok)
        }
    }

    @Test func bridgeWithoutPortsIsReported() throws {
        try withTestHosts(2) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.6.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(hosts[1])
            try scenario.delete(hosts[1])
            let report = try scenario.doctor()
            let finding = try #require(report.findings("stale.bridge").first, "\(report.summary)")
            #expect(finding.subject == scenario.bridge)
            #expect(finding.fix?.contains("pier gc") == true)
            #expect(report.findings("stale.lease").isEmpty)
            #expect(report.findings("stale.cache").isEmpty)
        }
    }

    @Test func cachedResultWithoutAContainerRecordIsStale() throws {
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let scenario = try Scenario(host: host, subnet: "10.241.8.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(c1)
            try scenario.add(c2)
            // The runtime knows only c2: c1's cache entry is a leftover although its netns lives.
            let known = ContainerInfo(
                id: c2.name, name: "c2", netnsPath: c2.path, attachments: [scenario.attachment(c2)])
            let report = try Doctor(
                host: try scenario.hostNamespace(), paths: scenario.paths, containers: StaticContainers([known]),
                probeKernel: false
            ).run()
            let stale = report.findings("stale.cache")
            #expect(stale.map(\.subject) == [scenario.cachePath(c1)], "\(report.summary)")
            #expect(stale.first?.message.contains("no container record") == true)
        }
    }

    @Test func flushedPierChainsAreReported() throws {
        try withTestHosts(3) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.10.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(hosts[1])
            #expect(try scenario.doctor().findings("missing.pier_rule").isEmpty)
            try hosts[0].mustRun(["nft", "flush chain inet pier postrouting"])
            try hosts[0].mustRun(["nft", "flush chain inet pier forward"])
            let report = try scenario.doctor()
            let subjects = report.findings("missing.pier_rule").compactMap(\.subject)
            #expect(subjects.contains("inet pier postrouting \"pier:masquerade-v4\""), "\(report.summary)")
            #expect(subjects.contains("inet pier forward \"pier:isolation\""))
            #expect(report.findings("missing.pier_rule").first?.severity == .error)
            // Unmarked traffic: a warning without another table's dropping forward chain, an
            // error with one (Pier's accept rule there matches the mark).
            try hosts[0].mustRun(["nft", "flush chain inet pier forward_mark"])
            let mark = "inet pier forward_mark \"pier:mark-from-bridge\""
            let unmarked = try #require(
                try scenario.doctor().findings("missing.pier_rule").first { $0.subject == mark })
            #expect(unmarked.severity == .warning)
            try hosts[0].mustRun([
                "nft",
                "add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }",
            ])
            #expect(
                try scenario.doctor().findings("missing.pier_rule").first { $0.subject == mark }?.severity == .error)
            // Another ADD on the network restores them, as the fix says.
            try scenario.add(hosts[2])
            #expect(try scenario.doctor().findings("missing.pier_rule").isEmpty)
        }
    }

    @Test func storesNamedByNetworksAreChecked() throws {
        try withTestHosts(1) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.9.0/24")
            defer { scenario.cleanUp() }
            let store = scenario.root + "/overlay-store"
            let overlay =
                #"{"cniVersion":"1.1.0","name":"ovl","plugins":[{"type":"vxlan-overlay","vni":7,"store":{"type":"file","path":"\#(store)"}}]}"#
            // Nothing listens on loopback port 1: doctor must report this etcd as unreachable.
            let etcd =
                #"{"cniVersion":"1.1.0","name":"far","plugins":[{"type":"vxlan-overlay","vni":8,"store":{"type":"etcd","endpoints":["http://127.0.0.1:1"]}}]}"#
            try Data(overlay.utf8).write(to: URL(fileURLWithPath: scenario.paths.configDirectory + "/20-ovl.conflist"))
            try Data(etcd.utf8).write(to: URL(fileURLWithPath: scenario.paths.configDirectory + "/30-far.conflist"))
            let report = try scenario.doctor()
            #expect(report.findings("store.file").compactMap(\.subject) == [scenario.paths.storeDirectory, store])
            let etcdFinding = try #require(report.findings("store.etcd").first)
            #expect(etcdFinding.severity == .error && etcdFinding.subject == "http://127.0.0.1:1")
            #expect(etcdFinding.message.contains("far") && etcdFinding.message.contains("unreachable"))
            #expect(etcdFinding.fix != nil)
        }
    }

    @Test func aRunningEtcdIsHealthy() throws {
        let etcd = try EtcdServer()
        try etcd.start()
        defer { etcd.stop() }
        try withTestHosts(1) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.10.0/24")
            defer { scenario.cleanUp() }
            let config =
                #"{"cniVersion":"1.1.0","name":"near","plugins":[{"type":"vxlan-overlay","vni":9,"store":{"type":"etcd","endpoints":["\#(etcd.clientURL)"]}}]}"#
            try Data(config.utf8).write(to: URL(fileURLWithPath: scenario.paths.configDirectory + "/30-near.conflist"))
            let finding = try #require(try scenario.doctor().findings("store.etcd").first)
            #expect(finding.severity == .ok, "\(finding.message)")
        }
    }

    @Test func aTLSEtcdIsCheckedWithTheNetworksCertificates() throws {
        let pki = try TestPKI()
        let etcd = try EtcdServer(tls: .from(pki))
        defer { etcd.stop() }
        try withTestHosts(1) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.11.0/24")
            defer { scenario.cleanUp() }
            func conflist(_ name: String, vni: Int, ca: String) -> String {
                #"{"cniVersion":"1.1.0","name":"\#(name)","plugins":[{"type":"vxlan-overlay","vni":\#(vni),"store":{"#
                    + #""type":"etcd","endpoints":["\#(etcd.clientURL)"],"trustedCAFile":"\#(ca)","#
                    + #""certFile":"\#(pki.clientCertFile)","keyFile":"\#(pki.clientKeyFile)"}}]}"#
            }
            let directory = scenario.paths.configDirectory
            try Data(conflist("good", vni: 10, ca: pki.caFile).utf8).write(
                to: URL(fileURLWithPath: directory + "/30-good.conflist"))
            try Data(conflist("wrongca", vni: 11, ca: pki.otherCAFile).utf8).write(
                to: URL(fileURLWithPath: directory + "/31-wrongca.conflist"))
            let findings = try scenario.doctor().findings("store.etcd")
            #expect(findings.count == 2)
            #expect(findings.first?.severity == .ok, "\(findings.first?.message ?? "")")
            let wrong = try #require(findings.last)
            #expect(wrong.severity == .error)
            #expect(wrong.message.contains("wrongca") && wrong.message.contains("misconfigured"), "\(wrong.message)")
            #expect(wrong.message.contains("trustedCAFile \(pki.otherCAFile)"), "\(wrong.message)")
        }
    }

    @Test func unusableFileStoreIsAnError() throws {
        try withTestHosts(1) { hosts in
            let scenario = try Scenario(host: hosts[0], subnet: "10.241.7.0/24")
            defer { scenario.cleanUp() }
            let file = scenario.root + "/not-a-directory"
            try Data("x".utf8).write(to: URL(fileURLWithPath: file))
            var paths = scenario.paths
            paths.storeDirectory = file + "/store"
            let report = try Doctor(host: try scenario.hostNamespace(), paths: paths, probeKernel: false).run()
            #expect(report.findings("store.file").first?.severity == .error)
            #expect(report.findings("store.etcd").isEmpty)
        }
    }
}
