import Diagnostics
import Foundation
import IPAddressing
import NetNS
import PierTestSupport
import Testing

/// `pier trace` finds the broken hop of provoked faults, and calls a working path healthy.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct TraceTests {
    func trace(
        _ scenario: Scenario, from container: TestHost, to address: String, port: UInt16? = nil, probe: Bool = true
    ) throws -> TraceReport {
        let destination = try #require(IPAddress(address))
        let report = try Tracer(host: try scenario.hostNamespace(), paths: scenario.paths)
            .trace(TraceRequest(fromNetns: container.path, destination: destination, port: port, probe: probe))
        show(report.render(style: Style(enabled: false)))
        return report
    }

    @Test func sameBridgeIsHealthyAndADownHostVethIsFound() throws {
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let scenario = try Scenario(host: host, subnet: "10.243.1.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(c1)
            try scenario.add(c2)
            let target = try #require(scenario.address(of: c2))

            let healthy = try trace(scenario, from: c1, to: target)
            #expect(healthy.isHealthy, "\(healthy.summary)")
            #expect(healthy.probes.first?.result == "reply")
            #expect(healthy.hops.last?.step == "destination.interface")
            #expect(try JSONDecoder().decode(TraceReport.self, from: Data(ReportJSON.encode(healthy).utf8)) == healthy)

            // The destination's host veth goes down.
            let veth2 = try #require(scenario.hostVeth(of: c2))
            try host.mustRun(["ip", "link", "set", veth2, "down"])
            let destinationDown = try trace(scenario, from: c1, to: target)
            #expect(destinationDown.failedHop?.step == "destination.veth")
            #expect(destinationDown.failedHop?.fix == "ip link set \(veth2) up")
            #expect(!destinationDown.isHealthy)
            try host.mustRun(["ip", "link", "set", veth2, "up"])

            // The source's host veth goes down.
            let veth1 = try #require(scenario.hostVeth(of: c1))
            try host.mustRun(["ip", "link", "set", veth1, "down"])
            let sourceDown = try trace(scenario, from: c1, to: target, probe: false)
            #expect(sourceDown.failedHop?.step == "host.veth")
            #expect(sourceDown.failedHop?.detail.contains(veth1) == true)
            try host.mustRun(["ip", "link", "set", veth1, "up"])

            // Without a cache entry the destination is found through the bridge's FDB.
            try FileManager.default.removeItem(atPath: scenario.cachePath(c2))
            #expect(c1.canPing(target))
            let learned = try trace(scenario, from: c1, to: target)
            #expect(learned.isHealthy, "\(learned.summary)")
            #expect(learned.hops.last?.step == "destination.veth")
        }
    }

    @Test func ipv6PathIsHealthyAndItsDNATLookupUsesTheV6Maps() throws {
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let scenario = try Scenario(host: host, subnet: "fd24:7::/64")
            defer { scenario.cleanUp() }
            try scenario.add(c1)
            try scenario.add(c2)
            let target = try #require(scenario.address(of: c2))
            let report = try trace(scenario, from: c1, to: target)
            #expect(report.isHealthy, "\(report.summary)")
            #expect(report.probes.first?.result == "reply")
            let missing = try trace(scenario, from: c1, to: "fd24:7::1", port: 8443, probe: false)
            #expect(missing.failedHop?.step == "nat.dnat")
            #expect(missing.failedHop?.detail.contains("[fd24:7::1]:8443") == true)
            #expect(missing.failedHop?.detail.contains("dnat_v6") == true)
        }
    }

    @Test func isolatedNetworksDropRoutedTraffic() throws {
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let a = try Scenario(host: host, subnet: "10.243.2.0/24")
            let b = try Scenario(host: host, subnet: "10.243.3.0/24")
            defer {
                a.cleanUp()
                b.cleanUp()
            }
            try a.add(c1)
            try b.add(c2)
            let target = try #require(b.address(of: c2))
            let report = try trace(a, from: c1, to: target)
            #expect(report.failedHop?.step == "isolation", "\(report.summary)")
            #expect(report.failedHop?.detail.contains(a.bridge) == true)
            #expect(report.failedHop?.detail.contains(b.bridge) == true)
            #expect(report.probes.first?.reached == false)
            // The walk got there through the gateway and the host's route.
            #expect(report.hops.map(\.step).contains("host.route"))
        }
    }

    @Test func routedPathBetweenNetworksWithoutIsolationIsHealthy() throws {
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let a = try Scenario(host: host, subnet: "10.243.4.0/24", isolation: false)
            let b = try Scenario(host: host, subnet: "10.243.5.0/24", isolation: false)
            defer {
                a.cleanUp()
                b.cleanUp()
            }
            try a.add(c1)
            try b.add(c2)
            let report = try trace(a, from: c1, to: try #require(b.address(of: c2)))
            #expect(report.isHealthy, "\(report.summary)")
            #expect(report.hops.contains { $0.step == "isolation" && $0.status == .ok })
        }
    }

    @Test func missingDNATElementIsFound() throws {
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let scenario = try Scenario(host: host, subnet: "10.243.6.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(c1)
            try scenario.add(c2)
            let target = try #require(scenario.address(of: c2))
            try scenario.addDNAT([])
            let missing = try trace(scenario, from: c1, to: "10.243.6.1", port: 8080, probe: false)
            #expect(missing.failedHop?.step == "nat.dnat", "\(missing.summary)")
            #expect(missing.failedHop?.detail.contains("tcp 10.243.6.1:8080") == true)

            // With the element, the walk follows the DNAT to the container.
            let owner = scenario.attachment(c2).ownerTag
            try host.mustRun([
                "nft", "add element inet pier dnat_v4 { tcp . 8080 comment \"\(owner)\" : \(target) . 80 }",
            ])
            let withoutRules = try trace(scenario, from: c1, to: "10.243.6.1", port: 8080, probe: false)
            #expect(withoutRules.failedHop?.step == "nat.rules", "\(withoutRules.summary)")
            // The portmap plugin's fixed rules, as it lays them out.
            try host.mustRun(["nft", "add chain inet pier published"])
            try host.mustRun([
                "nft",
                "add rule inet pier published meta nfproto ipv4 meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @dnat_v4 comment \"pier:publish-v4\"",
            ])
            try host.mustRun(["nft", "add chain inet pier prerouting { type nat hook prerouting priority dstnat; }"])
            try host.mustRun([
                "nft", "add rule inet pier prerouting fib daddr type local jump published comment \"pier:publish\"",
            ])
            let published = try trace(scenario, from: c1, to: "10.243.6.1", port: 8080, probe: false)
            #expect(published.firstFailure == nil, "\(published.summary)")
            #expect(published.hops.contains { $0.step == "nat.dnat" && $0.detail.contains("\(target):80") })
            #expect(published.hops.last?.step == "destination.interface")
        }
    }

    @Test func overlayMissingFDBAndNeighbourEntriesAreFound() throws {
        try withTestHosts(4) { hosts in
            let (hostA, hostB, cA, cB) = (hosts[0], hosts[1], hosts[2], hosts[3])
            let overlay = try Overlay(
                hostA: hostA, hostB: hostB, cA: cA, cB: cB, subnet: "10.248.1", underlay: "10.249.1")
            let scenario = try Scenario(host: hostA, subnet: "10.244.1.0/24")
            defer { scenario.cleanUp() }

            let healthy = try trace(scenario, from: cA, to: overlay.addressB)
            #expect(healthy.isHealthy, "\(healthy.summary)")
            #expect(healthy.hops.contains { $0.step == "overlay.fdb" && $0.detail.contains("10.249.1.2") })

            // network inspect shows the overlay's device, FDB and neighbour entries.
            let name = "ovl-\(uniqueTag(6))"
            let config =
                #"{"cniVersion":"1.1.0","name":"\#(name)","plugins":[{"type":"vxlan-overlay","vni":42}]}"#
            try Data(config.utf8).write(to: URL(fileURLWithPath: scenario.paths.configDirectory + "/20-ovl.conflist"))
            let network = try NetworkInspector(host: try scenario.hostNamespace(), paths: scenario.paths)
                .inspect(network: name)
            let device = try #require(network.vxlan.first)
            #expect(device.name == "vx-00002a" && device.vni == 42 && device.learning == false && device.proxy == true)
            #expect(device.fdb.contains { $0.mac == overlay.macB && $0.destination == "10.249.1.2" })
            #expect(device.neighbors.contains { $0.address == overlay.addressB && $0.mac == overlay.macB })
            show(network.render(style: Style(enabled: false)))

            try hostA.mustRun(["bridge", "fdb", "del", overlay.macB, "dev", "vx-00002a", "dst", "10.249.1.2", "self"])
            let noFDB = try trace(scenario, from: cA, to: overlay.addressB, probe: false)
            #expect(noFDB.failedHop?.step == "overlay.fdb", "\(noFDB.summary)")
            #expect(noFDB.failedHop?.fix?.contains("bridge fdb append \(overlay.macB) dev vx-00002a") == true)
            try hostA.mustRun([
                "bridge", "fdb", "append", overlay.macB, "dev", "vx-00002a", "dst", "10.249.1.2", "self", "permanent",
            ])

            try hostA.mustRun(["ip", "neigh", "del", overlay.addressB, "dev", "vx-00002a"])
            let noNeighbour = try trace(scenario, from: cA, to: overlay.addressB, probe: false)
            #expect(noNeighbour.failedHop?.step == "overlay.neighbor", "\(noNeighbour.summary)")
            #expect(noNeighbour.failedHop?.fix?.contains("ip neigh replace \(overlay.addressB)") == true)
        }
    }
}

/// A two-host VXLAN overlay made with `ip` and `bridge`, as the overlay model lays it out:
/// bridge + VXLAN device (learning off, ARP proxy on) per host, and for the remote container
/// a static FDB entry and a permanent neighbour entry.
struct Overlay {
    let addressA: String
    let addressB: String
    let macA: String
    let macB: String

    init(hostA: TestHost, hostB: TestHost, cA: TestHost, cB: TestHost, subnet: String, underlay: String) throws {
        try connect(hostA, "under0", to: hostB, "under0")
        addressA = "\(subnet).2"
        addressB = "\(subnet).3"
        macA = "02:00:00:00:01:02"
        macB = "02:00:00:00:01:03"
        for (index, host, container, address, mac) in [(1, hostA, cA, addressA, macA), (2, hostB, cB, addressB, macB)] {
            try host.mustRun(["ip", "addr", "add", "\(underlay).\(index)/24", "dev", "under0"])
            try host.mustRun(["ip", "link", "add", "pov-00002a", "type", "bridge"])
            try host.mustRun([
                "ip", "link", "add", "vx-00002a", "type", "vxlan", "id", "42", "local", "\(underlay).\(index)",
                "dstport",
                "4789", "nolearning", "proxy",
            ])
            try host.mustRun(["ip", "link", "set", "vx-00002a", "master", "pov-00002a", "up"])
            try host.mustRun(["ip", "link", "set", "pov-00002a", "up"])
            try host.mustRun([
                "ip", "link", "add", "veth-c", "type", "veth", "peer", "name", "eth0", "netns", container.name,
            ])
            try host.mustRun(["ip", "link", "set", "veth-c", "master", "pov-00002a", "up"])
            try container.mustRun(["ip", "link", "set", "eth0", "address", mac])
            try container.mustRun(["ip", "addr", "add", "\(address)/24", "dev", "eth0"])
            try container.mustRun(["ip", "link", "set", "eth0", "up"])
        }
        for (host, remoteAddress, remoteMAC, vtep) in [
            (hostA, addressB, macB, "\(underlay).2"), (hostB, addressA, macA, "\(underlay).1"),
        ] {
            try host.mustRun([
                "bridge", "fdb", "append", remoteMAC, "dev", "vx-00002a", "dst", vtep, "self", "permanent",
            ])
            try host.mustRun([
                "ip", "neigh", "add", remoteAddress, "lladdr", remoteMAC, "dev", "vx-00002a", "nud", "permanent",
            ])
        }
    }
}
