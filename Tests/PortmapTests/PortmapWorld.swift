import Foundation
import PierTestSupport
import Testing

/// A small world for portmap tests: a "host" test host with a bridge network (Pier's `bridge`
/// with the `ipam` delegate, as a runtime chains them), an "outside" test host joined to the
/// host by a veth, and containers as further test hosts. Each test passes its own `octet`, so
/// subnets are 10.<octet>.0.0/24 (uplink) and 10.<octet>.1.0/24 (bridge), fd21:<octet>::/64 and
/// fd21:<octet>:1::/64; octets 211–220 are reserved for these tests.
final class PortmapWorld: @unchecked Sendable {
    let host: TestHost
    let outside: TestHost
    let containers: [TestHost]
    let network: NetworkFixture
    let portmap: NetworkFixture
    let octet: Int
    let bridgeRunner = PluginRunner("bridge")
    let portmapRunner = PluginRunner("portmap")
    /// Bridge results per container name, for chained ADD/DEL.
    private(set) var results: [String: [String: Any]] = [:]

    var hostV4: String { "10.\(octet).0.1" }
    var outsideV4: String { "10.\(octet).0.2" }
    var hostV6: String { "fd21:\(octet)::1" }
    var outsideV6: String { "fd21:\(octet)::2" }
    var gatewayV4: String { "10.\(octet).1.1" }
    var bridge: String { network.plugin["bridge"] as? String ?? "" }

    init(hosts: [TestHost], octet: Int, portmapKeys: [String: Any] = [:]) throws {
        host = hosts[0]
        outside = hosts[1]
        containers = Array(hosts.dropFirst(2))
        self.octet = octet
        network = NetworkFixture(plugin: [
            "type": "bridge", "bridge": "pm-\(uniqueTag(6))", "isGateway": true, "isDefaultGateway": true,
            "ipMasq": true, "hairpinMode": true,
            "ipam": [
                "type": "ipam", "ranges": [[["subnet": "10.\(octet).1.0/24"]], [["subnet": "fd21:\(octet):1::/64"]]],
            ],
        ])
        var plugin: [String: Any] = ["type": "portmap", "capabilities": ["portMappings": true]]
        for (key, value) in portmapKeys { plugin[key] = value }
        portmap = NetworkFixture(name: network.name, plugin: plugin)

        try connect(host, "up0", to: outside, "eth0")
        try host.mustRun(["ip", "addr", "add", "\(hostV4)/24", "dev", "up0"])
        try host.mustRun(["ip", "-6", "addr", "add", "\(hostV6)/64", "dev", "up0", "nodad"])
        try outside.mustRun(["ip", "addr", "add", "\(outsideV4)/24", "dev", "eth0"])
        try outside.mustRun(["ip", "-6", "addr", "add", "\(outsideV6)/64", "dev", "eth0", "nodad"])
    }

    func cleanUp() {
        network.cleanUp()
        portmap.cleanUp()
    }

    static func mapping(_ hostPort: Int, _ containerPort: Int, _ proto: String = "tcp", hostIP: String? = nil)
        -> [String: Any]
    {
        var mapping: [String: Any] = ["hostPort": hostPort, "containerPort": containerPort, "protocol": proto]
        if let hostIP { mapping["hostIP"] = hostIP }
        return mapping
    }

    /// Attaches `container` with the bridge plugin (once) and returns the bridge result.
    @discardableResult
    func attach(_ container: TestHost) throws -> [String: Any] {
        if let result = results[container.name] { return result }
        let output = try bridgeRunner.run(
            "ADD", config: network.config(), containerID: container.name, netns: container.path, ifname: "eth0",
            in: host)
        try #require(output.status == 0, "bridge ADD failed: \(output.stdout) \(output.stderr)")
        results[container.name] = output.object
        return output.object
    }

    /// portmap ADD chained after the bridge result of `container`.
    func publish(_ container: TestHost, _ mappings: [[String: Any]]) throws -> PluginOutput {
        let previous = try attach(container)
        return try portmapRunner.run(
            "ADD", config: portmapConfig(previous: previous, mappings: mappings), containerID: container.name,
            netns: container.path, ifname: "eth0", in: host)
    }

    func portmapConfig(previous: [String: Any]?, mappings: [[String: Any]]?, extra: [String: Any] = [:]) -> String {
        var keys = extra
        if let previous { keys["prevResult"] = previous }
        if let mappings { keys["runtimeConfig"] = ["portMappings": mappings] }
        return portmap.config(keys)
    }

    /// portmap DEL (with or without prevResult and netns), as a runtime sends it.
    func unpublish(
        _ container: TestHost, mappings: [[String: Any]]? = nil, withPrevious: Bool = true, withNetns: Bool = true
    ) throws -> PluginOutput {
        try portmapRunner.run(
            "DEL", config: portmapConfig(previous: withPrevious ? results[container.name] : nil, mappings: mappings),
            containerID: container.name, netns: withNetns ? container.path : "", ifname: "eth0", in: host)
    }

    /// The whole chain's DEL for every attached container: portmap, then bridge.
    func detachAll() throws {
        for container in containers where results[container.name] != nil {
            let portmapOutput = try unpublish(container)
            #expect(portmapOutput.status == 0, "portmap DEL: \(portmapOutput.stdout)")
            let output = try bridgeRunner.run(
                "DEL", config: network.config(), containerID: container.name, netns: container.path, ifname: "eth0",
                in: host)
            #expect(output.status == 0, "bridge DEL: \(output.stdout)")
            results[container.name] = nil
        }
    }

    func address(of container: TestHost, family: String) -> String? {
        let ips = results[container.name]?["ips"] as? [[String: Any]] ?? []
        let addresses = ips.compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
        return addresses.first { family == "6" ? $0.contains(":") : !$0.contains(":") }
    }

    /// Elements of a map in `inet pier` as nft prints them (`key : value`, comment dropped).
    func elements(_ map: String) throws -> [[String: Any]] {
        let result = try host.run(["nft", "-j", "list", "map", "inet", "pier", map])
        guard result.succeeded else { return [] }
        let object = try result.json() as? [String: Any]
        let items = object?["nftables"] as? [[String: Any]] ?? []
        let body = items.compactMap { $0["map"] as? [String: Any] }.first
        return (body?["elem"] as? [Any] ?? []).compactMap { $0 as? [String: Any] ?? ["value": $0] }
    }

    /// The text of `nft list map inet pier <map>`.
    func mapText(_ map: String) throws -> String {
        try host.run(["nft", "list", "map", "inet", "pier", map]).stdout
    }

    /// Total rules in `inet pier`.
    func ruleCount() throws -> Int {
        try host.nftJSON(["list", "table", "inet", "pier"]).filter { $0["rule"] != nil }.count
    }
}

/// The four DNAT maps.
let dnatMaps = ["dnat_v4", "dnat_v4_bound", "dnat_v6", "dnat_v6_bound"]
