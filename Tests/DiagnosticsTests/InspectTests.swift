import CNI
import Diagnostics
import Foundation
import NetNS
import PierTestSupport
import Testing

/// `pier inspect` and `pier network inspect` against a real bridge network in test hosts.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct InspectTests {
    @Test func containerInterfacesWithPeerBridgeOriginAndPublishedPorts() throws {
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            let portmap: [String: Any] = ["type": "portmap", "capabilities": ["portMappings": true]]
            let scenario = try Scenario(host: host, subnet: "10.242.1.0/24", extraPlugins: [portmap])
            defer { scenario.cleanUp() }
            try scenario.add(c1, portMappings: [["hostPort": 8080, "containerPort": 80, "protocol": "tcp"]])
            let address = try #require(scenario.address(of: c1))
            let owner = scenario.attachment(c1).ownerTag
            try scenario.addDNAT(["tcp . 8080 comment \"\(owner)\" : \(address) . 80"])
            #expect(c1.canPing("10.242.1.1"))  // leaves a neighbour entry for the gateway

            let container = ContainerInfo(
                id: c1.name, name: "web", netnsPath: c1.path, attachments: [scenario.attachment(c1)], status: "running")
            let report = try Inspector(host: try scenario.hostNamespace(), paths: scenario.paths)
                .inspect(netnsPath: c1.path, container: container)
            #expect(report.container == ContainerIdentity(id: c1.name, name: "web", status: "running"))
            let eth0 = try #require(report.interfaces.first { $0.name == "eth0" })
            #expect(eth0.kind == "veth")
            #expect(eth0.state == "up")
            #expect(eth0.addresses == ["\(address)/24"])
            #expect(eth0.routes.contains { $0.destination == "default" && $0.gateway == "10.242.1.1" })
            #expect(eth0.neighbors.contains { $0.address == "10.242.1.1" && $0.mac != nil })
            #expect(eth0.hostPeer?.name == scenario.hostVeth(of: c1))
            #expect(eth0.hostPeer?.bridge == scenario.bridge)
            #expect(eth0.hostPeer?.state == "up")
            #expect(eth0.attachment?.network == scenario.network.name)
            #expect(eth0.attachment?.ownerTag == owner)
            #expect(eth0.origin?.plugins == ["bridge", "portmap"])
            #expect(eth0.origin?.cacheFile == scenario.cachePath(c1))
            #expect(eth0.origin?.configFile?.hasSuffix("\(scenario.network.name).conflist") == true)
            #expect(
                eth0.publishedPorts.map { "\($0.protocol) \($0.hostPort) \($0.containerAddress):\($0.containerPort)" }
                    == ["tcp 8080 \(address):80"])
            // Loopback is left out: the first interface is the container's (scripts read interfaces[0]).
            #expect(report.interfaces.map(\.name) == ["eth0"])
            #expect(eth0.network == scenario.network.name)

            // JSON: round-trips, and the documented keys are exactly what is emitted.
            let json = ReportJSON.encode(report)
            #expect(try JSONDecoder().decode(ContainerReport.self, from: Data(json.utf8)) == report)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["schemaVersion", "container", "netns", "interfaces"])
            let interfaces = try #require(object["interfaces"] as? [[String: Any]])
            let eth0JSON = try #require(interfaces.first { $0["name"] as? String == "eth0" })
            #expect(
                Set(eth0JSON.keys) == [
                    "name", "index", "kind", "mac", "mtu", "state", "adminUp", "addresses", "routes", "neighbors",
                    "hostPeer", "network", "attachment", "origin", "publishedPorts",
                ])
            let text = report.render(style: Style(enabled: false))
            show(text + "\n" + json)
            #expect(text.contains("eth0") && text.contains(scenario.bridge) && text.contains("bridge → portmap"))
            #expect(!text.contains("\u{1b}["))
        }
    }

    @Test func networkReportShowsBridgeLeasesAttachmentsAndTables() throws {
        try withTestHosts(3) { hosts in
            let (host, c1, c2) = (hosts[0], hosts[1], hosts[2])
            let scenario = try Scenario(host: host, subnet: "10.242.2.0/24")
            defer { scenario.cleanUp() }
            try scenario.add(c1)
            try scenario.add(c2)
            let report = try NetworkInspector(host: try scenario.hostNamespace(), paths: scenario.paths)
                .inspect(network: scenario.network.name)
            #expect(report.plugins == ["bridge"])
            #expect(report.config?["plugins"]?.arrayValue?.first?["bridge"]?.stringValue == scenario.bridge)
            #expect(report.subnets == ["10.242.2.0/24"])
            let bridge = try #require(report.bridge)
            #expect(bridge.exists && bridge.addresses == ["10.242.2.1/24"])
            #expect(Set(bridge.ports) == Set([scenario.hostVeth(of: c1), scenario.hostVeth(of: c2)].compactMap { $0 }))
            #expect(report.leases.count == 2 && report.leases.allSatisfy(\.live))
            #expect(Set(report.leases.map(\.containerId)) == [c1.name, c2.name])
            #expect(report.attachments.count == 2 && report.attachments.allSatisfy(\.live))
            #expect(report.masquerade.configured && report.masquerade.subnets == ["10.242.2.0"])
            #expect(report.isolation.isolatedBridge && report.isolation.sameBridge)
            #expect(report.elements.contains { $0.set == "inet pier same_bridge" })
            let text = report.render(style: Style(enabled: true))
            show(text)
            #expect(text.contains(scenario.bridge) && text.contains("live"))
            #expect(try JSONDecoder().decode(NetworkReport.self, from: Data(ReportJSON.encode(report).utf8)) == report)

            #expect(throws: DiagnosticsError.self) {
                try NetworkInspector(host: try scenario.hostNamespace(), paths: scenario.paths).inspect(network: "nope")
            }
        }
    }
}
