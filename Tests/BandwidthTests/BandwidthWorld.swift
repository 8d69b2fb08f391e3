import Foundation
import PierTestSupport
import Testing

/// A host test host with a bridge network and one container test host attached to it by an
/// interface plugin (Pier's `bridge` + `ipam`, or the reference `bridge` + `host-local`), so
/// `bandwidth` runs chained after a real prevResult, as a runtime runs it.
final class BandwidthWorld: @unchecked Sendable {
    let host: TestHost
    let container: TestHost
    let network: NetworkFixture
    let bandwidth: NetworkFixture
    let octet: Int
    let bandwidthRunner: PluginRunner
    let interfaceRunner: PluginRunner
    /// The interface plugin's result: bandwidth's prevResult.
    private(set) var previous: [String: Any] = [:]

    var gatewayV4: String { "10.\(octet).1.1" }
    var containerV4: String {
        let ips = previous["ips"] as? [[String: Any]] ?? []
        let address = ips.compactMap { $0["address"] as? String }.first { !$0.contains(":") } ?? ""
        return String(address.split(separator: "/").first ?? "")
    }

    /// `referenceBridge` attaches with the reference `bridge` + `host-local` instead of Pier's.
    init(hosts: [TestHost], octet: Int, referenceBridge: Bool = false, bandwidthKeys: [String: Any] = [:]) {
        host = hosts[0]
        container = hosts[1]
        self.octet = octet
        let bridgeName = "bw-\(uniqueTag(6))"
        if referenceBridge {
            network = NetworkFixture(
                cniVersion: "1.0.0",
                plugin: [
                    "type": "bridge", "bridge": bridgeName, "isGateway": true,
                    "ipam": [
                        "type": "host-local", "subnet": "10.\(octet).1.0/24",
                        "dataDir": NSTemporaryDirectory() + "pier-t-hostlocal-\(uniqueTag())",
                    ],
                ])
            var runner = PluginRunner("bridge")
            runner.pluginDirectory = "/usr/lib/cni"
            interfaceRunner = runner
        } else {
            network = NetworkFixture(
                cniVersion: "1.0.0",
                plugin: [
                    "type": "bridge", "bridge": bridgeName, "isGateway": true,
                    "ipam": ["type": "ipam", "ranges": [[["subnet": "10.\(octet).1.0/24"]]]],
                ])
            interfaceRunner = PluginRunner("bridge")
        }
        var plugin: [String: Any] = ["type": "bandwidth", "capabilities": ["bandwidth": true]]
        for (key, value) in bandwidthKeys { plugin[key] = value }
        bandwidth = NetworkFixture(name: network.name, cniVersion: "1.0.0", plugin: plugin)
        bandwidthRunner = PluginRunner("bandwidth")
    }

    /// ADD of the interface plugin; its result becomes bandwidth's prevResult.
    func attach() throws {
        let output = try interfaceRunner.run(
            "ADD", config: network.config(), containerID: container.name, netns: container.path, ifname: "eth0",
            in: host)
        try #require(output.status == 0, "bridge ADD failed: \(output.stdout) \(output.stderr)")
        previous = output.object
    }

    func detach() {
        _ = try? interfaceRunner.run(
            "DEL", config: network.config(), containerID: container.name, netns: container.path, ifname: "eth0",
            in: host)
    }

    func cleanUp() {
        if let ipam = network.plugin["ipam"] as? [String: Any], let directory = ipam["dataDir"] as? String {
            try? FileManager.default.removeItem(atPath: directory)
        }
        network.cleanUp()
        bandwidth.cleanUp()
    }

    /// containerd's translation of `kubernetes.io/{ingress,egress}-bandwidth`: the rate, and
    /// 2^32 - 1 as the burst it has no annotation for.
    static func containerdLimits(ingress: UInt64 = 0, egress: UInt64 = 0) -> [String: Any] {
        var limits: [String: Any] = [:]
        if ingress > 0 { limits.merge(["ingressRate": ingress, "ingressBurst": 4_294_967_295]) { $1 } }
        if egress > 0 { limits.merge(["egressRate": egress, "egressBurst": 4_294_967_295]) { $1 } }
        return limits
    }

    func bandwidthConfig(runtime limits: [String: Any]?, previous: [String: Any]? = nil, extra: [String: Any] = [:])
        -> String
    {
        var keys = extra
        keys["prevResult"] = previous ?? self.previous
        if let limits { keys["runtimeConfig"] = ["bandwidth": limits] }
        return bandwidth.config(keys)
    }

    func run(_ command: String, _ config: String, netns: String? = nil) throws -> PluginOutput {
        try bandwidthRunner.run(
            command, config: config, containerID: container.name, netns: netns ?? container.path, ifname: "eth0",
            in: host)
    }

    // MARK: Kernel state, as tc and ip see it

    /// The host end of the container's veth, by the index its peer names (ip's `link_index`).
    func hostVeth() throws -> String {
        let inside = try container.ipJSON(["link", "show", "dev", "eth0"]).first
        let peerIndex = try #require(inside?["link_index"] as? Int)
        let links = try host.ipJSON(["link", "show"])
        let peer = links.first { $0["ifindex"] as? Int == peerIndex }
        return try #require(peer?["ifname"] as? String)
    }

    func qdiscs(_ device: String) throws -> [[String: Any]] {
        let result = try host.mustRun(["tc", "-j", "qdisc", "show", "dev", device])
        return (try result.json() as? [[String: Any]]) ?? []
    }

    /// The root TBF's options (rate and burst in bytes), nil when the root is something else.
    func rootTokenBucket(_ device: String) throws -> [String: Any]? {
        let root = try qdiscs(device).first { $0["root"] as? Bool == true }
        guard root?["kind"] as? String == "tbf" else { return nil }
        return root?["options"] as? [String: Any]
    }

    func hasIngressQdisc(_ device: String) throws -> Bool {
        try qdiscs(device).contains { $0["kind"] as? String == "ingress" }
    }

    /// Devices the ingress filters of `device` redirect to.
    func redirectTargets(_ device: String) throws -> [String] {
        let result = try host.mustRun(["tc", "-j", "filter", "show", "dev", device, "ingress"])
        let filters = (try? result.json() as? [[String: Any]]) ?? []
        return filters.flatMap { filter -> [String] in
            let actions = (filter["options"] as? [String: Any])?["actions"] as? [[String: Any]] ?? []
            return actions.compactMap { $0["kind"] as? String == "mirred" ? $0["to_dev"] as? String : nil }
        }
    }

    func ifbNames() throws -> [String] {
        try host.ipJSON(["link", "show", "type", "ifb"]).compactMap { $0["ifname"] as? String }
    }
}

/// One iperf3 TCP run from `sender` to `receiver`, measured where the data arrives: the server
/// runs in the sender and sends (`-R`), the client in the receiver counts what came in.
struct Throughput {
    /// Bits per second over the whole run.
    var average: Double
    /// Bits per second in the first second: what an unbounded burst lets through.
    var firstSecond: Double

    static func measure(
        from sender: TestHost, at senderAddress: String, to receiver: TestHost, seconds: Int = 5, port: Int = 5201
    ) throws -> Throughput {
        // Detached with every inherited descriptor closed: a server holding the runner's pipes
        // would keep it waiting. One client, and gone after 30 idle seconds should a test crash.
        let launcher = """
            import subprocess, sys
            p = subprocess.Popen(["iperf3", "-s", "-1", "--idle-timeout", "30"] + sys.argv[1:],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                close_fds=True, start_new_session=True)
            print(p.pid)
            """
        let pid = try sender.mustRun(["python3", "-c", launcher, "-B", senderAddress, "-p", String(port)]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? runCommand(["kill", "-9", pid]) }
        var output: CommandResult?
        // The daemon may not listen yet: retry a refused connection for a moment.
        for _ in 0..<20 {
            let result = try receiver.run(
                ["iperf3", "-c", senderAddress, "-p", String(port), "-R", "-t", String(seconds), "-J"],
                timeout: Double(seconds) + 30)
            output = result
            // iperf3 -J exits 0 even when it could not connect: the reason is in "error".
            if !result.stdout.contains("unable to connect") { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let result = try #require(output)
        try #require(result.succeeded, "iperf3: \(result.stdout.prefix(400)) \(result.stderr)")
        let report = try #require(try result.json() as? [String: Any])
        let intervals = report["intervals"] as? [[String: Any]] ?? []
        let first = try #require(intervals.first?["sum"] as? [String: Any], "iperf3: \(result.stdout.prefix(600))")
        let end = try #require((report["end"] as? [String: Any])?["sum_received"] as? [String: Any])
        let firstBits = ((first["bytes"] as? NSNumber)?.doubleValue ?? 0) * 8
        let firstSeconds = (first["seconds"] as? NSNumber)?.doubleValue ?? 1
        return Throughput(
            average: (end["bits_per_second"] as? NSNumber)?.doubleValue ?? 0,
            firstSecond: firstBits / max(firstSeconds, 0.5))
    }
}

/// Two test hosts with a container attached by the bridge plugin (the world most bandwidth tests
/// start from); detached and cleaned up however `body` ends.
func withAttachedWorld(octet: Int, _ body: (BandwidthWorld) throws -> Void) throws {
    try withTestHosts(2) { hosts in
        let world = BandwidthWorld(hosts: hosts, octet: octet)
        defer { world.cleanUp() }
        try world.attach()
        defer { world.detach() }
        try body(world)
    }
}
