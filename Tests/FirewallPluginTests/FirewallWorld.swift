import Foundation
import PierTestSupport
import Testing

/// Bridge networks in a "host" test host, each chained `bridge` (+`ipam`) then `firewall` as a
/// runtime runs them, an "outside" test host behind a veth (10.61.0.0/24), and containers as
/// further test hosts. Every network has Pier's own bridge `isolation` off, so what separates
/// networks in these tests is the firewall's ingress policy alone.
final class FirewallWorld: @unchecked Sendable {
    struct Network {
        var bridge: NetworkFixture
        var firewall: NetworkFixture
        var gateway: String
    }

    let host: TestHost
    let outside: TestHost
    let bridgeRunner = PluginRunner("bridge")
    let firewallRunner = PluginRunner("firewall")
    private(set) var networks: [String: Network] = [:]
    /// Bridge results per container name, for chained ADD/CHECK/DEL.
    private(set) var results: [String: [String: Any]] = [:]
    private var attached: [(TestHost, String)] = []

    static let hostV4 = "10.61.0.1"
    static let outsideV4 = "10.61.0.2"

    init(host: TestHost, outside: TestHost) throws {
        self.host = host
        self.outside = outside
        try connect(host, "up0", to: outside, "eth0")
        try host.mustRun(["ip", "addr", "add", "\(Self.hostV4)/24", "dev", "up0"])
        try outside.mustRun(["ip", "addr", "add", "\(Self.outsideV4)/24", "dev", "eth0"])
        try outside.mustRun(["ip", "route", "add", "10.61.0.0/16", "via", Self.hostV4])
    }

    /// A bridge network `10.61.<index>.0/24` (+ `fd61:<index>::/64` when `ipv6`) whose
    /// firewall has `firewallKeys` (e.g. `ingressPolicy`), with the bridge's own `isolation`
    /// off unless `bridgeIsolation`.
    func addNetwork(
        _ key: String, index: Int, firewallKeys: [String: Any] = [:], ipv6: Bool = false, bridgeIsolation: Bool = false
    ) {
        var ranges: [[[String: Any]]] = [[["subnet": "10.61.\(index).0/24"]]]
        if ipv6 { ranges.append([["subnet": "fd61:\(index)::/64"]]) }
        let bridge = NetworkFixture(plugin: [
            "type": "bridge", "bridge": "fw\(key)-\(uniqueTag(4))", "isGateway": true, "isDefaultGateway": true,
            "ipMasq": true, "isolation": bridgeIsolation, "ipam": ["type": "ipam", "ranges": ranges],
        ])
        var firewall: [String: Any] = ["type": "firewall"]
        for (name, value) in firewallKeys { firewall[name] = value }
        networks[key] = Network(
            bridge: bridge, firewall: NetworkFixture(name: bridge.name, plugin: firewall), gateway: "10.61.\(index).1")
    }

    func bridgeName(_ network: String) -> String { networks[network]?.bridge.plugin["bridge"] as? String ?? "" }

    func networkName(_ network: String) -> String { networks[network]?.bridge.name ?? "" }

    /// bridge ADD, then firewall ADD with the bridge result as prevResult.
    @discardableResult
    func attach(_ container: TestHost, to network: String) throws -> PluginOutput {
        let output = try attachBridgeOnly(container, to: network)
        try #require(output.status == 0, "bridge ADD failed: \(output.stdout) \(output.stderr)")
        return try firewall("ADD", container, network)
    }

    /// The bridge ADD alone (its result is kept as the firewall's prevResult).
    func attachBridgeOnly(_ container: TestHost, to network: String) throws -> PluginOutput {
        let fixture = try #require(networks[network])
        let output = try bridgeRunner.run(
            "ADD", config: fixture.bridge.config(), containerID: container.name, netns: container.path,
            ifname: "eth0", in: host)
        if output.status == 0 {
            results[container.name] = output.object
            attached.append((container, network))
        }
        return output
    }

    /// The firewall plugin alone, as the runtime sends it for this attachment.
    func firewall(
        _ command: String, _ container: TestHost, _ network: String, withPrevious: Bool = true,
        extra: [String: Any] = [:]
    ) throws -> PluginOutput {
        let fixture = try #require(networks[network])
        var keys = extra
        if withPrevious, let previous = results[container.name] { keys["prevResult"] = previous }
        return try firewallRunner.run(
            command, config: fixture.firewall.config(keys), containerID: container.name, netns: container.path,
            ifname: "eth0", in: host)
    }

    /// The chain's DEL for every attachment still there: firewall, then bridge.
    func detachAll() {
        for (container, network) in attached.reversed() {
            guard let fixture = networks[network] else { continue }
            _ = try? firewall("DEL", container, network)
            _ = try? bridgeRunner.run(
                "DEL", config: fixture.bridge.config(), containerID: container.name, netns: container.path,
                ifname: "eth0", in: host)
        }
        attached = []
        for network in networks.values {
            network.bridge.cleanUp()
            network.firewall.cleanUp()
        }
    }

    func address(of container: TestHost, ipv6: Bool = false) -> String? {
        let ips = results[container.name]?["ips"] as? [[String: Any]] ?? []
        return ips.compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
            .first { $0.contains(":") == ipv6 }
    }

    /// Elements of a set (or map: `kind` "map") as `key comment "tag"` lines, concatenations
    /// joined with " . "; empty when the set does not exist.
    func elements(_ set: String, family: String = "inet", kind: String = "set") throws -> [String] {
        let result = try host.run(["nft", "-j", "list", kind, family, "pier", set])
        guard result.succeeded else { return [] }
        let object = try result.json() as? [String: Any]
        let items = object?["nftables"] as? [[String: Any]] ?? []
        let body = items.compactMap { $0[kind] as? [String: Any] }.first
        return (body?["elem"] as? [Any] ?? []).map { item in
            let element = (item as? [String: Any])?["elem"] as? [String: Any]
            var value = element?["val"] ?? item
            // A map element is [key, value]: the key is what identifies it.
            if kind == "map", let pair = value as? [Any], let first = pair.first { value = first }
            let key: String
            if let concat = (value as? [String: Any])?["concat"] as? [Any] {
                key = concat.map { "\($0)" }.joined(separator: " . ")
            } else {
                key = "\(value)"
            }
            let comment = element?["comment"] as? String ?? ""
            return "\(key) comment \"\(comment)\""
        }
    }

    /// The whole ruleset of the host, as text (for "nothing changed").
    func ruleset() throws -> String { try host.mustRun(["nft", "list", "ruleset"]).stdout }
}
