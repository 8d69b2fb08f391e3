import Foundation

/// A throwaway single-member etcd for tests: its own temporary data directory, a free port,
/// and either the test runner's namespace (listening on 127.0.0.1) or a test host (listening
/// on one of that host's addresses, so other test hosts reach it over their underlay).
/// `stop()` kills it with SIGKILL (a child of the test runner may ignore SIGTERM); `start()`
/// brings it back on the same port and data, as an etcd restart would. With `tls` it serves
/// https only, and may require client certificates.
public final class EtcdServer: @unchecked Sendable {
    public let address: String
    public let port: Int
    public let peerPort: Int
    public let dataDirectory: String
    public let host: TestHost?
    public let tls: EtcdServerTLS?
    /// More etcd flags, e.g. `--auth-token-ttl`.
    public let extraArguments: [String]
    private var process: Process?
    private let logPath: String

    public var clientURL: String { "\(tls == nil ? "http" : "https")://\(address):\(port)" }

    public init(
        in host: TestHost? = nil, address: String = "127.0.0.1", tls: EtcdServerTLS? = nil,
        extraArguments: [String] = []
    ) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") else {
            throw EtcdMissing()
        }
        self.host = host
        self.address = address
        self.tls = tls
        self.extraArguments = extraArguments
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
        argv += extraArguments
        if let tls {
            argv += ["--cert-file", tls.certFile, "--key-file", tls.keyFile]
            if let clientCA = tls.clientCAFile { argv += ["--client-cert-auth", "--trusted-ca-file", clientCA] }
        }
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

    /// True when a range request gets an answer from a member with a leader: 200, or a refusal
    /// when authentication is on (over TLS: without checking the server's certificate, which
    /// some tests make bad on purpose).
    public func isServing() -> Bool {
        guard let status = (try? post("/v3/kv/range", #"{"key":"AA=="}"#, timeout: 1))?.status else { return false }
        return status < 500
    }

    /// POSTs a JSON body to the gateway, as an independent client (Python's urllib), and returns
    /// the status and body; for test setup such as enabling authentication.
    public func post(_ path: String, _ body: String, token: String? = nil, timeout: Int = 5) throws -> (
        status: Int, body: String
    ) {
        let script = """
            import sys, ssl, urllib.request, urllib.error
            url, body, token, cert, key = sys.argv[1:6]
            context = ssl._create_unverified_context()
            if cert:
                context.load_cert_chain(cert, key)
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = token
            req = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
            try:
                answer = urllib.request.urlopen(req, timeout=\(timeout), context=context)
                print(answer.status); print(answer.read().decode())
            except urllib.error.HTTPError as error:
                print(error.code); print(error.read().decode())
            """
        let argv = [
            "python3", "-c", script, clientURL + path, body, token ?? "", tls?.probeCertFile ?? "",
            tls?.probeKeyFile ?? "",
        ]
        let result =
            try host.map { try $0.run(argv, timeout: Double(timeout + 4)) }
            ?? runCommand(argv, timeout: Double(timeout + 4))
        let lines = result.stdout.split(separator: "\n", maxSplits: 1)
        guard result.succeeded, let first = lines.first, let status = Int(first) else {
            throw EtcdRequestFailed(path: path, output: result.stderr)
        }
        return (status, lines.count > 1 ? String(lines[1]) : "")
    }

    /// Turns on etcd authentication with `root` as its only user (etcd requires the root user
    /// before auth can be enabled).
    public func enableAuthentication(rootPassword: String) throws {
        for (path, body) in [
            ("/v3/auth/user/add", #"{"name":"root","password":"\#(rootPassword)"}"#),
            ("/v3/auth/user/grant", #"{"user":"root","role":"root"}"#),
            ("/v3/auth/enable", "{}"),
        ] {
            let answer = try post(path, body)
            guard answer.status == 200 else { throw EtcdRequestFailed(path: path, output: answer.body) }
        }
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

/// How a test etcd serves TLS.
public struct EtcdServerTLS: Sendable {
    public var certFile: String
    public var keyFile: String
    /// When set, clients must present a certificate this CA signed (`--client-cert-auth`).
    public var clientCAFile: String?
    /// What the readiness probe and `post` present when client certificates are required.
    public var probeCertFile: String?
    public var probeKeyFile: String?

    public init(
        certFile: String, keyFile: String, clientCAFile: String? = nil, probeCertFile: String? = nil,
        probeKeyFile: String? = nil
    ) {
        self.certFile = certFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
        self.probeCertFile = probeCertFile
        self.probeKeyFile = probeKeyFile
    }

    /// The PKI's server certificate (or `certFile`/`keyFile`), requiring client certificates
    /// signed by the PKI's CA unless `clientCertificates` is false.
    public static func from(
        _ pki: TestPKI, certFile: String? = nil, keyFile: String? = nil, clientCertificates: Bool = true
    ) -> EtcdServerTLS {
        EtcdServerTLS(
            certFile: certFile ?? pki.serverCertFile, keyFile: keyFile ?? pki.serverKeyFile,
            clientCAFile: clientCertificates ? pki.caFile : nil,
            probeCertFile: clientCertificates ? pki.clientCertFile : nil,
            probeKeyFile: clientCertificates ? pki.clientKeyFile : nil)
    }
}

public struct EtcdRequestFailed: Error, CustomStringConvertible {
    public let path: String
    public let output: String
    public var description: String { "etcd request \(path) failed: \(output)" }
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
