import Foundation

/// A TCP or UDP server inside a test host that answers every connection (or datagram) with the
/// address it came from, so tests see NAT at work: masquerade rewrites the source, DNAT the
/// destination. Listens on all IPv4 and IPv6 addresses unless `address` is given. Stops by
/// itself after `lifetime` seconds, and on `stop()`.
public final class PeerEchoServer: @unchecked Sendable {
    private let process: Process
    public let port: Int

    public init(in host: TestHost, port: Int, udp: Bool = false, address: String = "::", lifetime: Int = 60) throws {
        self.port = port
        let script = """
            import ctypes, socket, sys, time
            # Die with the test process (PR_SET_PDEATHSIG), should it crash before stop().
            ctypes.CDLL(None).prctl(1, 9)
            udp = sys.argv[2] == "udp"
            family = socket.AF_INET6 if ":" in sys.argv[3] else socket.AF_INET
            s = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((sys.argv[3], int(sys.argv[1])))
            if not udp:
                s.listen(64)
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
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "ip", "netns", "exec", host.name, "python3", "-c", script, String(port), udp ? "udp" : "tcp", address,
            String(lifetime),
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    public func stop() {
        if process.isRunning {
            // SIGKILL: a child of the test runner may inherit SIGTERM as ignored.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
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
