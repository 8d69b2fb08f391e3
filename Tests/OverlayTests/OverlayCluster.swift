import Foundation
import PierTestSupport
import Testing

/// Test hosts joined by an underlay "switch": a test host with a bridge, one veth port per
/// host. Each host gets `10.<underlay>.<i+1>/24` on `eth0` and a default route via the switch
/// (`.254`), which is also where an etcd listens when the store is etcd. Containers are test
/// hosts too. Everything is removed by `tearDown()` (namespaces, agents, etcd, store dir).
final class OverlayCluster: @unchecked Sendable {
    enum StoreKind { case file, etcd }

    let underlay: Underlay
    var switchHost: TestHost { underlay.switchHost }
    var hosts: [TestHost] { underlay.hosts }
    var containers: [String: TestHost] = [:]
    let underlayNet: Int
    let storeDirectory: String
    var etcd: EtcdServer?
    /// Running agents by `<network>/<host index>`.
    var agents: [String: Process] = [:]
    let agentLogs: String
    let kind: StoreKind

    init(hosts count: Int, store kind: StoreKind) throws {
        self.kind = kind
        storeDirectory = NSTemporaryDirectory() + "pier-t-store-\(uniqueTag())"
        agentLogs = storeDirectory + "-agents"
        try FileManager.default.createDirectory(atPath: agentLogs, withIntermediateDirectories: true)
        let underlayNet = Int.random(in: 0...255)
        self.underlayNet = underlayNet
        underlay = try Underlay(hosts: count, prefix: "10.238.\(underlayNet)")
        do {
            if kind == .etcd { etcd = try EtcdServer(in: underlay.switchHost, address: underlay.switchAddress) }
        } catch {
            tearDown()
            throw error
        }
    }

    var underlayPrefix: String { "10.238.\(underlayNet)" }
    /// The plugins' and agents' runtime state (their shared lock), removed with the cluster.
    var runDirectory: String { storeDirectory + "-run" }
    func vtep(_ index: Int) -> String { underlay.address(index) }
    func hostName(_ index: Int) -> String { "h\(index)" }

    /// The `store` object of a network config as host `index` writes it.
    func storeJSON(host index: Int) -> [String: Any] {
        switch kind {
        case .file: return ["type": "file", "path": storeDirectory, "host": hostName(index)]
        case .etcd:
            return [
                "type": "etcd", "endpoints": [etcd?.clientURL ?? ""], "prefix": "/pier-test", "host": hostName(index),
            ]
        }
    }

    /// Creates a container namespace named by `key`.
    func container(_ key: String) throws -> TestHost {
        if let existing = containers[key] { return existing }
        let container = try TestHost()
        containers[key] = container
        return container
    }

    /// Starts `pier agent` for `network` inside host `index`.
    func startAgent(host index: Int, network: String) throws {
        var argv = [
            "ip", "netns", "exec", hosts[index].name, builtProductsDirectory + "/pier", "agent", "--network", network,
            "--host", hostName(index), "--run-dir", runDirectory,
        ]
        switch kind {
        case .file: argv += ["--store-type", "file", "--store-path", storeDirectory]
        case .etcd:
            argv += [
                "--store-type", "etcd", "--store-endpoints", etcd?.clientURL ?? "", "--store-prefix", "/pier-test",
            ]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        let logPath = "\(agentLogs)/\(network)-h\(index).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: logPath) ?? FileHandle.nullDevice
        try process.run()
        agents["\(network)/\(index)"] = process
    }

    func agentLog(host index: Int, network: String) -> String {
        (try? String(contentsOfFile: "\(agentLogs)/\(network)-h\(index).log", encoding: .utf8)) ?? ""
    }

    /// Stops the agent with `signal`; returns whether it exited within 3 s (else it is killed).
    @discardableResult
    func stopAgent(host index: Int, network: String, signal: Int32 = SIGKILL) -> Bool {
        stopAgent("\(network)/\(index)", signal: signal)
    }

    @discardableResult
    private func stopAgent(_ key: String, signal: Int32) -> Bool {
        guard let process = agents[key] else { return true }
        agents[key] = nil
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        guard process.isRunning else { return true }
        kill(process.processIdentifier, SIGKILL)
        return false
    }

    func tearDown() {
        for key in agents.keys { stopAgent(key, signal: SIGKILL) }
        etcd?.stop()
        for container in containers.values { container.destroy() }
        underlay.destroy()
        try? FileManager.default.removeItem(atPath: storeDirectory)
        try? FileManager.default.removeItem(atPath: agentLogs)
        try? FileManager.default.removeItem(atPath: runDirectory)
    }

    deinit { tearDown() }
}

/// One overlay network on a cluster: its config per host and plugin calls.
struct OverlayNetwork: @unchecked Sendable {
    let cluster: OverlayCluster
    let name: String
    let vni: Int
    let subnet: String
    var extra: [String: Any] = [:]

    init(cluster: OverlayCluster, vni: Int? = nil, subnetIndex: Int? = nil, extra: [String: Any] = [:]) {
        self.cluster = cluster
        self.name = "pier-t-ov-\(uniqueTag(6))"
        self.vni = vni ?? Int.random(in: 4000...4999)
        self.subnet = "10.239.\(subnetIndex ?? Int.random(in: 0...255))"
        self.extra = extra
    }

    var vxlanName: String { "vx-" + String(format: "%06x", vni) }
    var bridgeName: String { "pov-" + String(format: "%06x", vni) }

    func config(host index: Int, cniVersion: String = "1.1.0", _ more: [String: Any] = [:]) -> String {
        var object: [String: Any] = [
            "cniVersion": cniVersion, "name": name, "type": "vxlan-overlay", "vni": vni,
            "store": cluster.storeJSON(host: index), "runDir": cluster.runDirectory,
            "ipam": ["type": "ipam", "subnet": "\(subnet).0/24"],
        ]
        for (key, value) in extra { object[key] = value }
        for (key, value) in more { object[key] = value }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func run(
        _ command: String, host index: Int, container: TestHost? = nil, containerID: String = "",
        config: String? = nil
    ) throws -> PluginOutput {
        try PluginRunner("vxlan-overlay").run(
            command, config: config ?? self.config(host: index), containerID: containerID,
            netns: container?.path ?? "", ifname: container == nil && containerID.isEmpty ? "" : "eth0",
            in: cluster.hosts[index])
    }

    /// ADDs container `key` on host `index`; returns its IPv4 address.
    @discardableResult
    func add(_ key: String, host index: Int) throws -> String {
        let container = try cluster.container(key)
        let output = try run("ADD", host: index, container: container, containerID: key)
        guard output.status == 0 else { throw PluginFailed(verb: "ADD \(key)", output: output) }
        let ips = output.object["ips"] as? [[String: Any]] ?? []
        guard let address = (ips.first?["address"] as? String)?.split(separator: "/").first else {
            throw PluginFailed(verb: "ADD \(key) (no address)", output: output)
        }
        return String(address)
    }

    func delete(_ key: String, host index: Int) throws {
        let output = try run("DEL", host: index, container: cluster.containers[key], containerID: key)
        guard output.status == 0 else { throw PluginFailed(verb: "DEL \(key)", output: output) }
    }

    /// Remote endpoints as the kernel of host `index` holds them: FDB (MAC → dst) and
    /// neighbours (IP → MAC), permanent entries on this network's VXLAN device only.
    func kernelEntries(host index: Int) throws -> (fdb: [String: String], neighbors: [String: String]) {
        let host = cluster.hosts[index]
        var fdb: [String: String] = [:]
        for entry in try host.bridgeJSON(["fdb", "show", "dev", vxlanName]) {
            guard let mac = entry["mac"] as? String, let dst = entry["dst"] as? String,
                (entry["state"] as? String) == "permanent"
            else { continue }
            fdb[mac] = dst
        }
        var neighbors: [String: String] = [:]
        for entry in try host.ipJSON(["neigh", "show", "dev", vxlanName]) {
            guard let ip = entry["dst"] as? String, let mac = entry["lladdr"] as? String,
                (entry["state"] as? [String])?.contains("PERMANENT") == true
            else { continue }
            neighbors[ip] = mac
        }
        return (fdb, neighbors)
    }
}

struct PluginFailed: Error, CustomStringConvertible {
    let verb: String
    let output: PluginOutput
    var description: String { "\(verb) exited \(output.status): \(output.stdout) \(output.stderr)" }
}

/// Polls `condition` every 50 ms until it holds or `seconds` pass; returns whether it held.
func eventually(within seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if try condition() { return true }
        usleep(50_000)
    } while Date() < deadline
    return try condition()
}
