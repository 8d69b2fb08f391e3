import Foundation

/// A throwaway single-member etcd for tests: its own temporary data directory, a free port,
/// and either the test runner's namespace (listening on 127.0.0.1) or a test host (listening
/// on one of that host's addresses, so other test hosts reach it over their underlay).
/// `stop()` kills it with SIGKILL (a child of the test runner may ignore SIGTERM); `start()`
/// brings it back on the same port and data, as an etcd restart would.
public final class EtcdServer: @unchecked Sendable {
    public let address: String
    public let port: Int
    public let peerPort: Int
    public let dataDirectory: String
    public let host: TestHost?
    private var process: Process?
    private let logPath: String

    public var clientURL: String { "http://\(address):\(port)" }

    public init(in host: TestHost? = nil, address: String = "127.0.0.1") throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") else {
            throw EtcdMissing()
        }
        self.host = host
        self.address = address
        if host == nil {
            port = try freeLoopbackPort()
            peerPort = try freeLoopbackPort()
        } else {
            // A test host's namespace is private: any port is free there.
            port = Int.random(in: 20000...40000)
            peerPort = port + 1
        }
        dataDirectory = NSTemporaryDirectory() + "pier-t-etcd-\(uniqueTag())"
        logPath = dataDirectory + ".log"
        try start()
    }

    /// Starts etcd and waits until it serves reads (at most `timeout` seconds).
    public func start(timeout: Double = 20) throws {
        stop()
        let peer = "http://127.0.0.1:\(peerPort)"
        var argv = [
            "/usr/bin/etcd", "--name", "pier-test", "--data-dir", dataDirectory,
            "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "pier-test=\(peer)", "--logger", "zap", "--log-level", "error",
        ]
        if let host { argv = ["ip", "netns", "exec", host.name] + argv }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)
        process.standardOutput = log ?? FileHandle.nullDevice
        process.standardError = log ?? FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if isServing() { return }
            guard process.isRunning else { break }
            usleep(100_000)
        }
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        stop()
        throw EtcdFailedToStart(log: String(text.suffix(2000)))
    }

    /// True when a range request answers 200.
    public func isServing() -> Bool {
        let script = """
            import sys, urllib.request
            req = urllib.request.Request(sys.argv[1] + "/v3/kv/range", data=b'{"key":"AA=="}', method="POST")
            try:
                urllib.request.urlopen(req, timeout=1).read()
            except Exception:
                sys.exit(1)
            """
        let argv = ["python3", "-c", script, clientURL]
        let result = try? (host.map { try $0.run(argv, timeout: 5) } ?? runCommand(argv, timeout: 5))
        return result?.succeeded ?? false
    }

    public func stop() {
        guard let process else { return }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        self.process = nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: dataDirectory)
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

public struct EtcdMissing: Error, CustomStringConvertible {
    public var description: String { "etcd is not installed (Debian package etcd-server; scripts/setup installs it)" }
}

public struct EtcdFailedToStart: Error, CustomStringConvertible {
    public let log: String
    public var description: String { "etcd did not start: \(log)" }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}
