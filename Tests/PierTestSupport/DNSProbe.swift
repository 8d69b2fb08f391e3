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
public final class FakeUpstream: BackgroundUpstream, @unchecked Sendable {

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
        super.init()
        try launch(in: host, server: server, arguments: [address, log])
    }

    /// Starts a server script (argv: the rest) in its own session once it prints `ready`; prints its pid.
}

/// A fake upstream whose answers do not fit in UDP: every A question gets, over UDP, one record
/// with TC set and, over TCP, `TruncatingUpstream.recordCount` records (198.51.100.1 onwards,
/// over 512 bytes); with `answersOverTCP` false it reads TCP questions and never answers them.
/// Each question is appended to `log` as `udp name` or `tcp name`.
public final class TruncatingUpstream: BackgroundUpstream, @unchecked Sendable {
    public static let recordCount = 40
    public static var addresses: [String] { (1...recordCount).map { "198.51.100.\($0)" } }

    public init(in host: TestHost, address: String, answersOverTCP: Bool = true) throws {
        let server = """
            import signal, socket, struct, sys, threading
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            address, log, answers = sys.argv[1], sys.argv[2], sys.argv[3] == "answer"
            lock = threading.Lock()
            def note(line):
                with lock, open(log, "a") as f:
                    f.write(line + "\\n")
            def reply(q, count, tc):
                o, labels = 12, []
                while q[o]:
                    labels.append(q[o + 1:o + 1 + q[o]].decode())
                    o += 1 + q[o]
                head = struct.pack(">HHHHHH", struct.unpack(">H", q[:2])[0], 0x8380 if tc else 0x8180, 1, count, 0, 0)
                records = b"".join(b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([198, 51, 100, i + 1])
                    for i in range(count))
                return ".".join(labels).lower(), head + q[12:o + 5] + records
            def serve_udp(s):
                while True:
                    q, peer = s.recvfrom(4096)
                    name, r = reply(q, 1, True)
                    note("udp " + name)
                    s.sendto(r, peer)
            def serve_tcp(c):
                buf = b""
                while True:
                    chunk = c.recv(65535)
                    if not chunk:
                        break
                    buf += chunk
                    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                        n = struct.unpack(">H", buf[:2])[0]
                        name, r = reply(buf[2:2 + n], \(Self.recordCount), False)
                        buf = buf[2 + n:]
                        note("tcp " + name)
                        if answers:
                            c.sendall(struct.pack(">H", len(r)) + r)
                c.close()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((address, 53))
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((address, 53))
            t.listen(16)
            threading.Thread(target=serve_udp, args=(u,), daemon=True).start()
            print("ready", flush=True)
            t.settimeout(300)
            while True:
                try:
                    c, _ = t.accept()
                except socket.timeout:
                    break
                c.settimeout(None)
                threading.Thread(target=serve_tcp, args=(c,), daemon=True).start()
            """
        super.init()
        try launch(in: host, server: server, arguments: [address, log, answersOverTCP ? "answer" : "silent"])
    }
}

/// What the fake upstreams share: a Python server started in a test host, detached, that
/// appends each question it gets to `log`; `stop()` (or deinit) kills it and removes the log.
public class BackgroundUpstream: @unchecked Sendable {
    public let log = NSTemporaryDirectory() + "pier-t-upstream-\(uniqueTag()).log"
    private var pid = ""

    /// Runs `server` (Python source; `arguments` are its `sys.argv[1...]`) and waits for its
    /// `ready` line.
    func launch(in host: TestHost, server: String, arguments: [String]) throws {
        pid = try host.mustRun(["python3", "-c", Self.launcher, server] + arguments).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let launcher = """
        import subprocess, sys
        p = subprocess.Popen([sys.executable, "-c", sys.argv[1]] + sys.argv[2:], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
        if p.stdout.readline().strip() != b"ready":
            sys.exit("fake upstream did not start")
        print(p.pid)
        """

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
