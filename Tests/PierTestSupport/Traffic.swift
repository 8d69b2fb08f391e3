import Foundation

/// A TCP or UDP server inside a test host that answers every connection (or datagram) with the
/// address it came from, so tests see NAT at work: masquerade rewrites the source, DNAT the
/// destination. Listens on all IPv4 and IPv6 addresses unless `address` is given.
///
/// `init` returns once the socket is bound and listening. The server runs detached, with every
/// inherited descriptor closed and its own signal mask (a child of the test runner may inherit
/// SIGTERM blocked), is stopped with SIGKILL by `stop()`, and ends by itself after `lifetime`
/// seconds should a crashed test never stop it.
public final class PeerEchoServer: @unchecked Sendable {
    private let pid: String
    public let port: Int

    public init(in host: TestHost, port: Int, udp: Bool = false, address: String = "::", lifetime: Int = 300) throws {
        self.port = port
        let server = """
            import signal, socket, sys, time
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            udp = sys.argv[2] == "udp"
            family = socket.AF_INET6 if ":" in sys.argv[3] else socket.AF_INET
            s = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((sys.argv[3], int(sys.argv[1])))
            if not udp:
                s.listen(64)
            print("ready", flush=True)
            deadline = time.time() + int(sys.argv[4])
            while time.time() < deadline:
                s.settimeout(max(0.1, deadline - time.time()))
                try:
                    if udp:
                        data, peer = s.recvfrom(2048)
                    else:
                        conn, peer = s.accept()
                except socket.timeout:
                    break
                text = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
                if udp:
                    s.sendto((text + "\\n").encode(), peer)
                else:
                    conn.sendall((text + "\\n").encode())
                    conn.close()
            """
        let launcher = """
            import subprocess, sys
            p = subprocess.Popen([sys.executable, "-c", sys.argv[1]] + sys.argv[2:], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
            if p.stdout.readline().strip() != b"ready":
                sys.exit("echo server did not start")
            print(p.pid)
            """
        let result = try host.mustRun(
            ["python3", "-c", launcher, server, String(port), udp ? "udp" : "tcp", address, String(lifetime)])
        pid = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func stop() {
        _ = try? runCommand(["kill", "-9", pid])
    }

    deinit { stop() }
}

/// Connects from inside `host` to `address:port` and returns the first line the server sent
/// (for `PeerEchoServer`: the source address it saw), or nil when nothing answered in time.
/// Retries refused connections briefly, so a server that is still starting is waited for.
public func askPeerAddress(from host: TestHost, to address: String, port: Int, udp: Bool = false, timeout: Double = 3)
    -> String?
{
    let script = """
        import socket, sys, time
        host, port, udp, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "udp", float(sys.argv[4])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                s = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
                s.settimeout(0.5 if udp else max(0.1, deadline - time.time()))
                if udp:
                    s.sendto(b"hi", (host, port))
                    data, _ = s.recvfrom(2048)
                else:
                    s.connect((host, port))
                    data = s.recv(2048)
                print(data.decode().strip())
                sys.exit(0)
            except (ConnectionRefusedError, socket.timeout, OSError):
                time.sleep(0.05)
        sys.exit(1)
        """
    let result = try? host.run(
        ["python3", "-c", script, address, String(port), udp ? "udp" : "tcp", String(timeout)], timeout: timeout + 5)
    guard let result, result.succeeded else { return nil }
    let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    return line.isEmpty ? nil : line
}
