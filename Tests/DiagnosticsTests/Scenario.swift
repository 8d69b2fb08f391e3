import CNI
import Diagnostics
import Foundation
import NetNS
import PierTestSupport
import PluginSupport
import Testing

/// A bridge network in a test host with containers attached the way the runtime attaches
/// them: the bridge plugin's ADD, then a libcni cache entry and a config file, all in
/// directories of this scenario (removed by `cleanUp()`).
final class Scenario {
    let host: TestHost
    let network: NetworkFixture
    let root: String
    let paths: StatePaths
    let bridge: String
    let extraPlugins: [[String: Any]]
    var results: [String: [String: Any]] = [:]

    init(host: TestHost, subnet: String, isolation: Bool = true, extraPlugins: [[String: Any]] = []) throws {
        self.host = host
        bridge = "br-\(uniqueTag(6))"
        network = NetworkFixture(
            plugin: [
                "type": "bridge", "bridge": bridge, "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
                "isolation": isolation, "ipam": ["type": "ipam", "ranges": [[["subnet": subnet]]]],
            ])
        self.extraPlugins = extraPlugins
        root = NSTemporaryDirectory() + "pier-t-diag-\(uniqueTag())"
        paths = StatePaths(
            cacheDirectory: root + "/cache", configDirectory: root + "/conf", stateRoot: root + "/state",
            leaseDirectory: network.dataDirectory, storeDirectory: root + "/store")
        for directory in [paths.cacheDirectory + "/results", paths.configDirectory, paths.storeDirectory] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        try Data(conflist.utf8).write(to: URL(fileURLWithPath: paths.configDirectory + "/10-\(network.name).conflist"))
    }

    var conflist: String {
        let plugin = (try? JSONSerialization.jsonObject(with: Data(network.config().utf8))) as? [String: Any] ?? [:]
        let object: [String: Any] = ["cniVersion": "1.1.0", "name": network.name, "plugins": [plugin] + extraPlugins]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func attachment(_ container: TestHost) -> CNI.Attachment {
        CNI.Attachment(network: network.name, containerID: container.name, ifName: "eth0")
    }

    /// ADD through the real plugin, then the cache entry a runtime writes.
    @discardableResult
    func add(_ container: TestHost, portMappings: [[String: Any]] = []) throws -> [String: Any] {
        let output = try PluginRunner("bridge").run(
            "ADD", config: network.config(), containerID: container.name, netns: container.path, ifname: "eth0",
            in: host)
        try #require(output.status == 0, "ADD failed: \(output.stdout) \(output.stderr)")
        results[container.name] = output.object
        var entry: [String: Any] = [
            "kind": "cniCacheV1", "containerId": container.name, "ifName": "eth0", "networkName": network.name,
            "netns": container.path, "config": Data(conflist.utf8).base64EncodedString(), "result": output.object,
        ]
        if !portMappings.isEmpty { entry["capabilityArgs"] = ["portMappings": portMappings] }
        let data = try JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: cachePath(container)))
        return output.object
    }

    func delete(_ container: TestHost) throws {
        let output = try PluginRunner("bridge").run(
            "DEL", config: network.config(), containerID: container.name, netns: container.path, ifname: "eth0",
            in: host)
        try #require(output.status == 0, "DEL failed: \(output.stdout) \(output.stderr)")
        try? FileManager.default.removeItem(atPath: cachePath(container))
    }

    func cachePath(_ container: TestHost) -> String {
        "\(paths.cacheDirectory)/results/\(network.name)-\(container.name)-eth0"
    }

    func address(of container: TestHost) -> String? {
        let ips = results[container.name]?["ips"] as? [[String: Any]] ?? []
        return (ips.first?["address"] as? String)?.split(separator: "/").first.map(String.init)
    }

    func hostVeth(of container: TestHost) -> String? {
        (results[container.name]?["interfaces"] as? [[String: Any]])?[1]["name"] as? String
    }

    func hostNamespace() throws -> NetworkNamespace { try NetworkNamespace.open(path: host.path) }

    func doctor(probeKernel: Bool = false) throws -> DoctorReport {
        try Doctor(host: try hostNamespace(), paths: paths, probeKernel: probeKernel).run()
    }

    /// Adds Pier's DNAT map (as the portmap plugin lays it out) with elements, through `nft`.
    func addDNAT(_ elements: [String]) throws {
        try host.mustRun([
            "nft", "add map inet pier dnat_v4 { type inet_proto . inet_service : ipv4_addr . inet_service; }",
        ])
        for element in elements {
            try host.mustRun(["nft", "add element inet pier dnat_v4 { \(element) }"])
        }
    }

    func cleanUp() {
        network.cleanUp()
        try? FileManager.default.removeItem(atPath: root)
    }

    deinit { cleanUp() }
}

extension DoctorReport {
    var errors: [Finding] { findings.filter { $0.severity == .error } }
    var summary: String {
        findings.filter { $0.severity != .ok }.map { "\($0.check): \($0.message)" }.joined(separator: "\n")
    }
}

/// `PIER_DIAG_SHOW=1 swift test --filter DiagnosticsTests` prints what the reports look like.
func show(_ text: @autoclosure () -> String) {
    if ProcessInfo.processInfo.environment["PIER_DIAG_SHOW"] != nil { print(text()) }
}
