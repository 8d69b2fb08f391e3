import Foundation
import NameService
import PierTestSupport
import Testing

/// A runtime test host with Pier bridge networks chained with `names` exactly as a runtime runs
/// them (bridge ADD, then names ADD with the bridge's result as prevResult), containers in
/// test hosts of their own, a records directory of its own (so a name server of its own), and
/// a DNS client that runs inside a container.
final class NamesWorld: @unchecked Sendable {
    let runtime: TestHost
    let recordsDirectory = NSTemporaryDirectory() + "pier-t-dns-\(uniqueTag())"
    private(set) var containers: [String: TestHost] = [:]
    private var attachments: [(network: Network, id: String, container: TestHost, names: String, bridge: String)] = []
    private var fixtures: [NetworkFixture] = []
    private let lock = NSLock()

    var store: NameRecordStore { NameRecordStore(directory: recordsDirectory) }

    struct Network: @unchecked Sendable {
        let fixture: NetworkFixture
        var names: [String: Any]
        var name: String { fixture.name }
    }

    init(runtime: TestHost) { self.runtime = runtime }

    /// A bridge network with its gateway on the bridge, and the `names` keys given.
    func network(subnets: [String], bridge: String, names: [String: Any] = [:], name: String? = nil) -> Network {
        let fixture = NetworkFixture(
            name: name,
            plugin: [
                "type": "bridge", "bridge": bridge, "isGateway": true,
                "ipam": ["type": "ipam", "ranges": subnets.map { [["subnet": $0]] }],
            ])
        lock.withLock { fixtures.append(fixture) }
        var keys = names
        keys["type"] = "names"
        keys["dataDir"] = recordsDirectory
        return Network(fixture: fixture, names: keys)
    }

    func namesConfig(_ network: Network, previous: Any, runtimeConfig: [String: Any]) -> String {
        var object = network.names
        object["cniVersion"] = network.fixture.cniVersion
        object["name"] = network.name
        object["prevResult"] = previous
        object["runtimeConfig"] = runtimeConfig
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Creates a container and attaches it; returns the chain's final result.
    @discardableResult
    func attach(
        _ network: Network, id: String, name: String? = nil, aliases: [String] = [], hostname: String? = nil
    ) throws -> [String: Any] {
        let container = try TestHost()
        lock.withLock { containers[id] = container }
        let bridge = network.fixture.config()
        let first = try PluginRunner("bridge").run(
            "ADD", config: bridge, containerID: id, netns: container.path, ifname: "eth0", in: runtime)
        try #require(first.status == 0, "bridge ADD \(id): \(first.stdout)")
        var runtimeConfig: [String: Any] = [:]
        if let name { runtimeConfig["name"] = name }
        if !aliases.isEmpty { runtimeConfig["aliases"] = [network.name: aliases] }
        if let hostname { runtimeConfig["hostname"] = hostname }
        let names = namesConfig(network, previous: first.object, runtimeConfig: runtimeConfig)
        lock.withLock { attachments.append((network, id, container, names, bridge)) }
        let second = try run("ADD", names, id: id, container: container)
        try #require(second.status == 0, "names ADD \(id): \(second.stdout)")
        return second.object
    }

    func run(_ verb: String, _ config: String, id: String, container: TestHost, args: String = "") throws
        -> PluginOutput
    {
        try PluginRunner("names").run(
            verb, config: config, containerID: id, netns: container.path, ifname: "eth0", args: args, in: runtime)
    }

    /// names DEL then bridge DEL, as a runtime deletes a chain (in reverse).
    func detach(_ id: String) throws {
        guard let attachment = lock.withLock({ attachments.first { $0.id == id } }) else { return }
        let names = try run("DEL", attachment.names, id: id, container: attachment.container)
        #expect(names.status == 0, "names DEL \(id): \(names.stdout)")
        let bridge = try PluginRunner("bridge").run(
            "DEL", config: attachment.bridge, containerID: id, netns: attachment.container.path, ifname: "eth0",
            in: runtime)
        #expect(bridge.status == 0, "bridge DEL \(id): \(bridge.stdout)")
        lock.withLock { attachments.removeAll { $0.id == id } }
    }

    func namesConfig(of id: String) -> String? { lock.withLock { attachments.first { $0.id == id }?.names } }

    /// The pid the name server wrote, while it runs.
    var serverPID: Int32? {
        guard NameServerControl.isRunning(store),
            let text = try? String(contentsOfFile: store.pidPath, encoding: .utf8)
        else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Kills a server a failed test left behind (it would otherwise outlive the namespace),
    /// then removes every file and namespace.
    func cleanUp() {
        if let pid = serverPID { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: recordsDirectory)
        for container in containers.values { container.destroy() }
        for fixture in fixtures { fixture.cleanUp() }
    }

    // MARK: DNS from inside a container

    typealias Answer = DNSAnswer

    /// Asks `server` (port 53) from inside `container`, over UDP with a TCP retry when the
    /// answer is truncated, as a stub resolver does. Each question is `name type` or
    /// `name type tcp`; one Python process asks them all.
    func ask(from container: TestHost, server: String, _ questions: [String]) throws -> [Answer] {
        try DNSProbe.ask(server: server, questions) { try container.run($0, timeout: 60) }
    }

    func ask(from container: TestHost, server: String, _ question: String) throws -> Answer {
        try ask(from: container, server: server, [question]).first ?? Answer(code: -1, addresses: [])
    }

}

func withNamesWorld(_ body: (NamesWorld) throws -> Void) throws {
    try withTestHosts(1) { hosts in
        let world = NamesWorld(runtime: hosts[0])
        defer { world.cleanUp() }
        try body(world)
    }
}
