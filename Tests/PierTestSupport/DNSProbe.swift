import Foundation

/// One DNS answer as a stub resolver sees it.
public struct DNSAnswer: Equatable, Sendable, CustomStringConvertible {
    public var code: Int
    public var addresses: [String]
    public var truncatedOverUDP = false
    public var timedOut = false
    public init(code: Int, addresses: [String], truncatedOverUDP: Bool = false, timedOut: Bool = false) {
        self.code = code
        self.addresses = addresses
        self.truncatedOverUDP = truncatedOverUDP
        self.timedOut = timedOut
    }
    public var description: String {
        timedOut ? "timeout" : "rcode \(code) \(addresses)\(truncatedOverUDP ? " (via TCP)" : "")"
    }
    public static func found(_ addresses: [String]) -> DNSAnswer { DNSAnswer(code: 0, addresses: addresses) }
    public static let nxdomain = DNSAnswer(code: 3, addresses: [])
}

/// A DNS client that runs inside a namespace (one Python process per batch of questions).
public enum DNSProbe {
    /// Asks `server` (port 53) through `run` (which runs an argv in the client's namespace), over
    /// UDP with a TCP retry when the answer is truncated, as a stub resolver does. Each question
    /// is `name type` or `name type tcp`.
    public static func ask(
        server: String, _ questions: [String], run: ([String]) throws -> CommandResult
    ) throws -> [DNSAnswer] {
        let result = try run(["python3", "-c", script, server] + questions)
        guard result.succeeded else { throw CommandFailure(command: ["python3", "dns client"], result: result) }
        return result.stdout.split(separator: "\n").map { line in
            let object =
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? ["timeout": true]
            if object["timeout"] != nil { return DNSAnswer(code: -1, addresses: [], timedOut: true) }
            return DNSAnswer(
                code: object["rcode"] as? Int ?? -1, addresses: object["answers"] as? [String] ?? [],
                truncatedOverUDP: object["retried"] as? Bool ?? false)
        }
    }

    /// A minimal stub resolver: RFC 1035 query, answers decoded (A, AAAA, PTR), TC -> TCP.
    public static let script = """
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
public final class FakeUpstream: @unchecked Sendable {
    public let log = NSTemporaryDirectory() + "pier-t-upstream-\(uniqueTag()).log"
    private var pid = ""

    public init(in host: TestHost, address: String) throws {
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

    public var questions: [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    public func stop() {
        if !pid.isEmpty { _ = try? runCommand(["kill", "-9", pid]) }
        pid = ""
        try? FileManager.default.removeItem(atPath: log)
    }

    deinit { stop() }
}
