import Foundation
import NameService
import PierTestSupport
import Testing

/// The name server's failure behaviour: killed while containers query it, restarted by hand (as
/// an init system or the next ADD would), it rebuilds every name from the records on disk; with
/// the host's resolv.conf pointing at a loopback stub (127.0.0.53, which no container can reach
/// itself) it forwards there.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ResolverRestartTests {
    static func monotonicNow() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Queries `name` over UDP for `seconds`, each with a 200 ms timeout, and prints one line:
    /// `{"ok": [monotonic times], "failed": [monotonic times]}`.
    static let load = """
        import json, random, socket, struct, sys, time
        server, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
        q = lambda i: struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + b"".join(
            bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
        ok, failed = [], []
        end = time.monotonic() + seconds
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        while time.monotonic() < end:
            i = random.randint(0, 65535)
            t = time.monotonic()
            try:
                s.sendto(q(i), (server, 53))
                while True:
                    m = s.recv(4096)
                    if struct.unpack(">H", m[:2])[0] == i:
                        break
                good = m[3] & 0xF == 0 and struct.unpack(">H", m[6:8])[0] > 0
            except OSError:
                good = False
            (ok if good else failed).append(t)
            if not good:
                time.sleep(0.01)
        print(json.dumps({"ok": ok, "failed": failed}))
        """

    /// Starts `pier-dns` by hand in `host`, as a supervisor would, with the given resolv.conf;
    /// returns once it answers on its control socket.
    static func startServer(in host: TestHost, store: NameRecordStore, resolvConf: String) throws {
        let launcher = """
            import subprocess, sys
            p = subprocess.Popen(["pier-dns", "--resolv-conf", sys.argv[2], sys.argv[3]], executable=sys.argv[1],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                start_new_session=True)
            print(p.pid)
            """
        try host.mustRun(["python3", "-c", launcher, builtProductsDirectory + "/pier-cni", resolvConf, store.directory])
        let deadline = monotonicNow() + 5
        while NameServerControl.request("ping", socketPath: store.socketPath) != "ok" {
            guard monotonicNow() < deadline else { throw NameServiceError("pier-dns did not start") }
            usleep(10_000)
        }
    }

    @Test func killedUnderLoadAndRestartedItAnswersEveryNameAndForwardsToALoopbackStub() throws {
        try withNamesWorld { world in
            let network = world.network(subnets: ["10.89.8.0/24"], bridge: "pdnsr")
            try world.attach(network, id: "r1", name: "alpha")
            try world.attach(network, id: "r2", name: "bravo", aliases: ["db"])
            let r1 = try #require(world.containers["r1"])
            let before = try #require(world.serverPID)

            // The host's resolver is a stub on loopback, as with systemd-resolved.
            let upstream = try FakeUpstream(in: world.runtime, address: "127.0.0.53")
            defer { upstream.stop() }
            let resolvConf = world.recordsDirectory + "-resolv.conf"
            try "nameserver 127.0.0.53\noptions edns0\n".write(toFile: resolvConf, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: resolvConf) }

            let loadOutput = OutputBox()
            let loadDone = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                loadOutput.value = try? r1.run(["python3", "-c", Self.load, "10.89.8.1", "bravo", "4"], timeout: 30)
                loadDone.signal()
            }
            usleep(700_000)
            kill(before, SIGKILL)
            usleep(500_000)
            try Self.startServer(in: world.runtime, store: world.store, resolvConf: resolvConf)
            let back = Self.monotonicNow()
            #expect(world.serverPID != before)
            loadDone.wait()

            let output = try #require(loadOutput.value, "the load generator did not run")
            let times = try #require(
                try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: [Double]],
                "\(output.stdout) \(output.stderr)")
            let failed = times["failed"] ?? []
            let ok = times["ok"] ?? []
            #expect(!failed.isEmpty, "the kill was felt: lookups failed while no server ran")
            #expect(failed.filter { $0 >= back }.isEmpty, "no failed lookup once it is back: \(failed) back \(back)")
            #expect(ok.filter { $0 >= back }.count > 10, "lookups answered after the restart")

            // Rebuilt from disk: every name, alias and the reverse.
            let answers = try world.ask(
                from: r1, server: "10.89.8.1", ["alpha A", "bravo A", "db A", "3.8.89.10.in-addr.arpa PTR"])
            #expect(
                answers == [
                    .found(["10.89.8.2"]), .found(["10.89.8.3"]), .found(["10.89.8.3"]), .found(["bravo.dns.pier"]),
                ])
            // Other names go to the loopback stub the container could never reach itself.
            #expect(try world.ask(from: r1, server: "10.89.8.1", "upstream.example A") == .found(["198.51.100.7"]))
            #expect(upstream.questions == ["upstream.example"])

            try world.detach("r1")
            try world.detach("r2")
            #expect(world.serverPID == nil, "a server started by hand exits with the last record too")
        }
    }
}

/// A result handed from the load generator's thread (read after its semaphore).
final class OutputBox: @unchecked Sendable {
    var value: CommandResult?
}
