import Foundation
import PierTestSupport
import Testing

/// A runtime test host that runs the plugin and a container test host with an `eth0` (one end
/// of a veth pair whose other end, `peer0`, stays in the container too), plus a data directory
/// of its own for saved settings. `prevResult` describes eth0 as an interface plugin would.
final class TuningWorld: @unchecked Sendable {
    let runtime: TestHost
    let container: TestHost
    let dataDirectory = NSTemporaryDirectory() + "pier-t-tuning-\(uniqueTag())"
    let network = "pier-t-\(uniqueTag())"
    let containerID = "tun-\(uniqueTag())"
    let tuning = PluginRunner("tuning")

    init(runtime: TestHost, container: TestHost) throws {
        self.runtime = runtime
        self.container = container
        try container.mustRun(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"])
        try container.mustRun(["ip", "link", "set", "eth0", "up"])
        try container.mustRun(["ip", "addr", "add", "10.77.0.2/24", "dev", "eth0"])
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    var savedFile: String { dataDirectory + "/\(containerID)_eth0.json" }

    var previousResult: [String: Any] {
        [
            "cniVersion": "1.1.0",
            "interfaces": [
                ["name": "vethabcd", "mac": "02:00:00:00:00:99"],
                ["name": "eth0", "mac": currentMAC ?? "", "sandbox": container.path],
            ],
            "ips": [["address": "10.77.0.2/24", "gateway": "10.77.0.1", "interface": 1]],
        ]
    }

    /// eth0's MAC now, or nil once it (or the container) is gone.
    private var currentMAC: String? {
        ((try? container.link("eth0")) ?? nil)?["address"] as? String
    }

    /// The stdin a runtime sends: the plugin's keys, this world's data directory and prevResult.
    func config(_ keys: [String: Any], version: String = "1.1.0", previous: [String: Any]? = nil) -> String {
        var object = keys
        object["type"] = "tuning"
        object["dataDir"] = object["dataDir"] ?? dataDirectory
        let fixture = NetworkFixture(name: network, cniVersion: version, plugin: object)
        defer { fixture.cleanUp() }
        return fixture.config(["prevResult": previous ?? previousResult])
    }

    func run(_ verb: String, _ config: String, args: String = "", netns: String? = nil) throws -> PluginOutput {
        try tuning.run(
            verb, config: config, containerID: containerID, netns: netns ?? container.path, ifname: "eth0",
            args: args, in: runtime)
    }

    // MARK: Kernel state, read independently of the plugin

    func link() throws -> [String: Any] {
        try #require(try container.link("eth0"))
    }

    func mac() throws -> String { try link()["address"] as? String ?? "" }

    /// What tuning may change on eth0, as `ip -j -d link` reports it.
    func linkState() throws -> LinkState {
        let link = try link()
        let flags = link["flags"] as? [String] ?? []
        return LinkState(
            mac: link["address"] as? String ?? "", mtu: link["mtu"] as? Int ?? 0, txqlen: link["txqlen"] as? Int ?? 0,
            promiscuous: flags.contains("PROMISC"), allMulticast: flags.contains("ALLMULTI"))
    }

    /// A sysctl as a process inside the container reads it.
    func sysctl(_ path: String) throws -> String {
        try container.mustRun(["cat", "/proc/sys/" + path]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    var savedFileExists: Bool { FileManager.default.fileExists(atPath: savedFile) }
}

struct LinkState: Equatable {
    var mac: String
    var mtu: Int
    var txqlen: Int
    var promiscuous: Bool
    var allMulticast: Bool
}

/// Runs `body` with a fresh world whose hosts and files are removed afterwards.
func withTuningWorld(_ body: (TuningWorld) throws -> Void) throws {
    try withTestHosts(2) { hosts in
        let world = try TuningWorld(runtime: hosts[0], container: hosts[1])
        defer { world.cleanUp() }
        try body(world)
    }
}
