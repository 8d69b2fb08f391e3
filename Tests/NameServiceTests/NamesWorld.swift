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
    func network(subnets: [String], bridge: String, names: [String: Any] = [:]) -> Network {
        let fixture = NetworkFixture(plugin: [
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

    struct Answer: Equatable, CustomStringConvertible {
        var code: Int
        var addresses: [String]
        var truncatedOverUDP = false
        var timedOut = false
        var description: String {
            timedOut ? "timeout" : "rcode \(code) \(addresses)\(truncatedOverUDP ? " (via TCP)" : "")"
        }
        static func found(_ addresses: [String]) -> Answer { Answer(code: 0, addresses: addresses) }
        static let nxdomain = Answer(code: 3, addresses: [])
    }

    /// Asks `server` (port 53) from inside `container`, over UDP with a TCP retry when the
    /// answer is truncated, as a stub resolver does. Each question is `name type` or
    /// `name type tcp`; one Python process asks them all.
    func ask(from container: TestHost, server: String, _ questions: [String]) throws -> [Answer] {
        let result = try container.run(["python3", "-c", Self.client, server] + questions, timeout: 60)
        try #require(result.succeeded, "DNS client: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n")
        return lines.map { line in
            let object =
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? ["timeout": true]
            if object["timeout"] != nil { return Answer(code: -1, addresses: [], timedOut: true) }
            return Answer(
                code: object["rcode"] as? Int ?? -1, addresses: object["answers"] as? [String] ?? [],
                truncatedOverUDP: object["retried"] as? Bool ?? false)
        }
    }

    func ask(from container: TestHost, server: String, _ question: String) throws -> Answer {
        try ask(from: container, server: server, [question]).first ?? Answer(code: -1, addresses: [])
    }

    /// A minimal stub resolver: RFC 1035 query, answers decoded (A, AAAA, PTR), TC -> TCP.
    static let client = """
        import json, random, socket, struct, sys
        TYPES = {"A": 1, "AAAA": 28, "PTR": 12, "TXT": 16, "ANY": 255}
        def encode(name):
            return b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".") if l) + b"\\0"
        def read_name(m, o):
            labels, end = [], None
            while True:
                n = m[o]
                if n & 0xC0 == 0xC0:
                    end = o + 2 if end is None else end
                    o = ((n & 0x3F) << 8) | m[o + 1]
                    continue
                if n == 0:
                    return ".".join(labels), (o + 1 if end is None else end)
                labels.append(m[o + 1:o + 1 + n].decode())
                o += 1 + n
        def ask(server, name, qtype, tcp):
            qid = random.randint(0, 65535)
            q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode(name) + struct.pack(">HH", TYPES[qtype], 1)
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            if tcp:
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(3)
                s.connect((server, 53))
                s.sendall(struct.pack(">H", len(q)) + q)
                buf = b""
                while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                    chunk = s.recv(65535)
                    if not chunk:
                        break
                    buf += chunk
                m = buf[2:]
            else:
                s = socket.socket(family, socket.SOCK_DGRAM)
                s.settimeout(3)
                s.sendto(q, (server, 53))
                m = s.recv(65535)
            s.close()
            rid, flags, qd, an = struct.unpack(">HHHH", m[:8])
            assert rid == qid, "answer to another query"
            o = 12
            for _ in range(qd):
                o = read_name(m, o)[1] + 4
            answers = []
            for _ in range(an):
                o = read_name(m, o)[1]
                rtype, _, _, length = struct.unpack(">HHIH", m[o:o + 10])
                o += 10
                if rtype == 1:
                    answers.append(socket.inet_ntop(socket.AF_INET, m[o:o + length]))
                elif rtype == 28:
                    answers.append(socket.inet_ntop(socket.AF_INET6, m[o:o + length]))
                elif rtype == 12:
                    answers.append(read_name(m, o)[0])
                o += length
            return {"rcode": flags & 0xF, "tc": bool(flags & 0x200), "answers": answers}
        server = sys.argv[1]
        for question in sys.argv[2:]:
            words = question.split()
            tcp = len(words) > 2 and words[2] == "tcp"
            try:
                r = ask(server, words[0], words[1], tcp)
                if r["tc"] and not tcp:
                    r = ask(server, words[0], words[1], True)
                    r["retried"] = True
            except (socket.timeout, ConnectionError, OSError):
                r = {"timeout": True}
            print(json.dumps(r), flush=True)
        """
}

/// A fake upstream resolver in a test host of its own: `upstream.example` is 198.51.100.7,
/// every other name NXDOMAIN; every question it gets is appended to `log`.
final class FakeUpstream: @unchecked Sendable {
    let log = NSTemporaryDirectory() + "pier-t-upstream-\(uniqueTag()).log"
    private var pid = ""

    init(in host: TestHost, address: String) throws {
        let server = """
            import signal, socket, struct, sys
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((sys.argv[1], 53))
            print("ready", flush=True)
            s.settimeout(300)
            while True:
                try:
                    q, peer = s.recvfrom(4096)
                except socket.timeout:
                    break
                o, labels = 12, []
                while q[o]:
                    labels.append(q[o + 1:o + 1 + q[o]].decode())
                    o += 1 + q[o]
                name = ".".join(labels).lower()
                end = o + 5
                with open(sys.argv[2], "a") as f:
                    f.write(name + "\\n")
                if name == "upstream.example":
                    head = struct.pack(">HHHHHH", struct.unpack(">H", q[:2])[0], 0x8180, 1, 1, 0, 0)
                    answer = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([198, 51, 100, 7])
                else:
                    head = struct.pack(">HHHHHH", struct.unpack(">H", q[:2])[0], 0x8183, 1, 0, 0, 0)
                    answer = b""
                s.sendto(head + q[12:end] + answer, peer)
            """
        let launcher = """
            import subprocess, sys
            p = subprocess.Popen([sys.executable, "-c", sys.argv[1]] + sys.argv[2:], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
            if p.stdout.readline().strip() != b"ready":
                sys.exit("fake upstream did not start")
            print(p.pid)
            """
        pid = try host.mustRun(["python3", "-c", launcher, server, address, log]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    var questions: [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() {
        if !pid.isEmpty { _ = try? runCommand(["kill", "-9", pid]) }
        pid = ""
        try? FileManager.default.removeItem(atPath: log)
    }

    deinit { stop() }
}

func withNamesWorld(_ body: (NamesWorld) throws -> Void) throws {
    try withTestHosts(1) { hosts in
        let world = NamesWorld(runtime: hosts[0])
        defer { world.cleanUp() }
        try body(world)
    }
}
