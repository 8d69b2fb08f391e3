import Glibc
import JSON
import PierState

/// How plugins reach the name server of a records directory: ask the running one to reload,
/// or start one (a daemon, detached from the plugin) when none runs.
public enum NameServerControl {
    /// How long a plugin waits for a server's answer or a new server's start.
    static let replyTimeout: Int32 = 5

    /// Makes the server serve the records now on disk, and reports whether `network` is
    /// served. With `launch` (the executable and the daemon name to exec it under) a server is
    /// started when none answers; without it (DEL, GC) a missing server is simply not needed.
    /// Call holding the store's lock, so two plugins never both start one.
    public static func reload(
        _ store: NameRecordStore, network: String, launch: (executable: String, name: String)?
    ) throws(NameServiceError) {
        if let reply = request("reload \(network)", socketPath: store.socketPath) {
            try check(reply)
            return
        }
        guard let launch else { return }
        try start(store, executable: launch.executable, name: launch.name)
        guard let reply = request("reload \(network)", socketPath: store.socketPath) else {
            throw NameServiceError("the name server started but does not answer on \(store.socketPath)")
        }
        try check(reply)
    }

    /// True while a server holds the directory's pidfile lock.
    public static func isRunning(_ store: NameRecordStore) -> Bool {
        let fd = open(store.pidPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 { return false }
        return errno == EWOULDBLOCK
    }

    private static func check(_ reply: String) throws(NameServiceError) {
        guard reply == "ok" else {
            throw NameServiceError("name server: " + (reply.hasPrefix("error ") ? String(reply.dropFirst(6)) : reply))
        }
    }

    /// One request on the control socket; nil when no server listens or it closed without a
    /// reply (it was exiting), which callers treat alike: there is no server to talk to.
    public static func request(_ line: String, socketPath: String) -> String? {
        guard let (address, length) = Sockets.unixAddress(socketPath) else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: Int(replyTimeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        guard connected == 0, Sockets.writeAll(fd, Array((line + "\n").utf8)) else { return nil }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while !reply.contains(UInt8(ascii: "\n")) {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            reply += chunk[0..<count]
        }
        return String(decoding: reply.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
    }

    /// Starts the daemon and waits until it is listening: double fork, so it is no child of
    /// the plugin (which exits in a moment) and, not being a session leader after setsid, can
    /// never take a controlling terminal; its stdio goes to /dev/null, so the runtime reading
    /// the plugin's output is not held open by it. It reports `ready` or `error <why>` on a pipe.
    static func start(_ store: NameRecordStore, executable: String, name: String) throws(NameServiceError) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw NameServiceError("pipe: \(Sockets.errorText())") }
        let (readEnd, writeEnd) = (ends[0], ends[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        // Everything the children need is prepared before fork, the executable's C string too
        // (bridging a String there may allocate, and malloc's lock may be held by a thread that
        // does not exist in the child): between fork and exec they only make system calls.
        let arguments = [name, "--ready-fd", String(writeEnd), store.directory]
        let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
        for (index, argument) in arguments.enumerated() { argv[index] = strdup(argument) }
        argv[arguments.count] = nil
        guard let path = strdup(executable) else { throw NameServiceError("strdup: \(Sockets.errorText())") }
        defer {
            for index in 0..<arguments.count { free(argv[index]) }
            argv.deallocate()
            free(path)
        }
        // The descriptors to close in the daemon, listed now: a loop up to the descriptor limit
        // (a million here) cost tens of milliseconds per start.
        let inherited =
            ((try? FileSystem.list("/proc/self/fd")) ?? nil)?.compactMap { Int32($0) }.filter {
                $0 > 2 && $0 != writeEnd
            } ?? Array(3..<1024).filter { $0 != writeEnd }

        let child = fork()
        if child == 0 {
            _ = setsid()
            if fork() != 0 { _exit(0) }
            _ = chdir("/")
            umask(0o022)
            let null = open("/dev/null", O_RDWR)
            if null >= 0 {
                dup2(null, 0)
                dup2(null, 1)
                dup2(null, 2)
            }
            _ = fcntl(writeEnd, F_SETFD, 0)
            for fd in inherited { close(fd) }
            execv(path, argv)
            _exit(127)
        }
        close(writeEnd)
        defer { close(readEnd) }
        guard child > 0 else { throw NameServiceError("fork: \(Sockets.errorText())") }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}

        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, replyTimeout * 1000)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { throw NameServiceError("the name server did not start within \(replyTimeout)s") }
            let count = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            reply += chunk[0..<count]
            if reply.contains(UInt8(ascii: "\n")) { break }
        }
        let line = String(decoding: reply.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        guard line == "ready" else {
            throw NameServiceError(
                line.isEmpty
                    ? "the name server exited before it was ready (see \(store.logPath))"
                    : String(line.hasPrefix("error ") ? line.dropFirst(6) : line[...]))
        }
    }
}

/// The daemon's life: `<name> [--ready-fd N] [--port P] [--resolv-conf PATH] [DIRECTORY]`.
public enum NameServerDaemon {
    public static func main(
        arguments: [String], defaultDirectory: String,
        sharedRecords: (@Sendable (JSONValue, String) -> [NameRecord])? = nil
    ) -> Never {
        var readyFD: Int32?
        var port = NameServer.defaultPort
        var resolvConf = "/etc/resolv.conf"
        var directory = defaultDirectory
        var index = 1
        func value() -> String? {
            index += 1
            return index < arguments.count ? arguments[index] : nil
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--ready-fd":
                guard let fd = value().flatMap(Int32.init) else { usage(arguments) }
                readyFD = fd
            case "--port":
                guard let number = value().flatMap(UInt16.init) else { usage(arguments) }
                port = number
            case "--resolv-conf":
                guard let path = value() else { usage(arguments) }
                resolvConf = path
            case let argument where !argument.hasPrefix("-"):
                directory = argument
            default:
                usage(arguments)
            }
            index += 1
        }
        // A runtime may have left these ignored or blocked; the daemon wants the defaults.
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
        signal(SIGHUP, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        var everything = sigset_t()
        sigemptyset(&everything)
        sigprocmask(SIG_SETMASK, &everything, nil)

        let store = NameRecordStore(directory: directory)
        if readyFD != nil {
            // Launched by a plugin: diagnostics go to the log beside the records.
            let logFD = open(store.logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if logFD >= 0 {
                dup2(logFD, STDERR_FILENO)
                close(logFD)
            }
        }
        let server = NameServer(store: store, port: port, resolvConfPath: resolvConf, sharedRecords: sharedRecords) {
            message in
            let line = Array("pier-dns[\(getpid())]: \(message)\n".utf8)
            _ = write(STDERR_FILENO, line, line.count)
        }
        do {
            try server.start()
        } catch {
            report("error \(error.message)", readyFD)
            server.log(error.message)
            exit(1)
        }
        report("ready", readyFD)
        server.run()
        exit(0)
    }

    private static func report(_ line: String, _ fd: Int32?) {
        guard let fd else { return }
        let bytes = Array((line + "\n").utf8)
        _ = write(fd, bytes, bytes.count)
        close(fd)
    }

    private static func usage(_ arguments: [String]) -> Never {
        let text = Array(
            "usage: \(arguments.first ?? "pier-dns") [--port P] [--resolv-conf PATH] [--ready-fd N] [DIRECTORY]\n".utf8)
        _ = write(STDERR_FILENO, text, text.count)
        exit(2)
    }
}
