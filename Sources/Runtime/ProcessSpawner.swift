import CNI
import CPierShim
import Glibc

/// Starts container processes and `pier`'s own helpers. A container's init is forked when this process
/// has a single thread (a fork of a multi-threaded process may inherit a lock held forever), else
/// `pier __init` is spawned: either way the child does its namespace work single-threaded before exec.
enum ProcessSpawner {
    enum Output {
        /// Share the caller's stdin/stdout/stderr (foreground `run -i`, `exec -i`).
        case inherit
        /// Share stdout and stderr; stdin from /dev/null (foreground without -i, as in Docker).
        case inheritOutput
        /// stdin from /dev/null, stdout and stderr appended to a log file (detached).
        case log(String)
        /// Everything to /dev/null (helpers).
        case discard
    }

    /// glibc's POSIX_SPAWN_SETSID, not imported into Swift.
    static let spawnSetsid: Int16 = 0x80

    /// Spawns `arguments` (argv[0] is the path) with only stdin, stdout and stderr (and the report pipe)
    /// open: in particular the store lock must not outlive `pier` in a container. With `reportFailure`, a pipe on fd 3 carries
    /// the child's error if it fails before exec; exec closes it, so an empty read means success.
    static func spawn(
        _ arguments: [String], output: Output, newSession: Bool, reportFailure: Bool
    ) throws(RuntimeError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        switch output {
        case .inherit: break
        case .inheritOutput:
            posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        case .log(let path):
            posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, path, O_WRONLY | O_CREAT | O_APPEND, 0o640)
            posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        case .discard:
            posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
        }
        var pipeEnds: [Int32] = [-1, -1]
        if reportFailure {
            guard pipe(&pipeEnds) == 0 else { throw RuntimeError.system("pipe", errno: errno) }
            _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
            // dup2 clears close-on-exec on fd 3; the child sets it again first thing.
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 3)
        }
        // Nothing else `pier` inherited may leak into a long-lived container: a caller's descriptor held
        // open by a container keeps that caller waiting (Foundation's Process, for one, learns that its
        // child exited from a socket the child inherits).
        // (glibc's addclosefrom_np is not visible to Swift, so each open descriptor is named.)
        for descriptor in openDescriptors() where descriptor > (reportFailure ? 3 : 2) {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
        defer { if pipeEnds[0] >= 0 { close(pipeEnds[0]) } }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Signals ignored or blocked by `pier` must not stay so in the container.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        var flags = Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        if newSession { flags |= spawnSetsid }
        posix_spawnattr_setflags(&attributes, flags)

        var pid = pid_t()
        let pointers = arguments.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, pointers, environ)
        if pipeEnds[1] >= 0 { close(pipeEnds[1]) }
        guard result == 0 else { throw RuntimeError.system("spawn \(arguments[0])", errno: result) }
        guard reportFailure else { return pid }
        try awaitReport(of: pid, on: pipeEnds[0])
        return pid
    }

    /// A container process forked or spawned, not yet known to have exec'd its command: the caller may
    /// record it meanwhile (the child's namespace work overlaps), then `confirm` waits for the exec.
    struct PendingStart {
        let pid: pid_t
        /// The report pipe's read end; -1 when the start was already confirmed.
        let report: Int32
        /// The child's robust futex list when it was forked (this thread's: a fork registers its own
        /// at the same address); nil when spawned.
        var robustList: UInt64? = nil

        /// Waits until the child exec'd its command or failed before; throws the child's failure.
        func confirm() throws(RuntimeError) {
            guard report >= 0 else { return }
            defer { close(report) }
            try ProcessSpawner.awaitReport(of: pid, on: report)
        }
    }

    /// Starts a container process (`ContainerInit` with `spec`): in a forked child of this process when
    /// it runs no other thread, else by spawning `executable __init` (the same code after an exec). The
    /// fork spares the container's start an exec of `pier` and its start-up (~3 ms); the child is set up
    /// as `spawn` sets up its child (descriptors, signals, session), and reports a failure before exec on
    /// fd 3 the same way. Call `confirm()` on the result.
    static func startInit(
        _ spec: InitSpec, executable: String, output: Output, newSession: Bool
    ) throws(RuntimeError) -> PendingStart {
        var spec = spec
        spec.reportDescriptor = 3
        guard InProcessPlugins.isSingleThreaded() else {
            let pid = try spawn(
                [executable, "__init"] + spec.arguments, output: output, newSession: newSession, reportFailure: true)
            return PendingStart(pid: pid, report: -1)
        }
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else { throw RuntimeError.system("pipe", errno: errno) }
        _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeEnds[1], F_SETFD, FD_CLOEXEC)
        let inherited = openDescriptors()
        // Buffered output of ours must not be written twice, once by each process.
        fflush(nil)
        let pid = fork()
        if pid == 0 {
            becomeContainerProcess(output: output, newSession: newSession, report: pipeEnds[1], inherited: inherited)
            ContainerInit.run(spec)
        }
        close(pipeEnds[1])
        guard pid > 0 else {
            close(pipeEnds[0])
            throw RuntimeError.system("fork", errno: errno)
        }
        let ownRobustList = pier_robust_list_head(0)
        return PendingStart(pid: pid, report: pipeEnds[0], robustList: ownRobustList == 0 ? nil : ownRobustList)
    }

    /// In the forked child: what `spawn`'s file actions and attributes do for a spawned one.
    private static func becomeContainerProcess(output: Output, newSession: Bool, report: Int32, inherited: [Int32]) {
        // A file that cannot be opened fails the start as a failed posix_spawn action did: reported on the
        // pipe (an exit without a report would read as a successful exec).
        func redirect(_ target: Int32, to path: String, flags: Int32) {
            let fd = open(path, flags | O_CLOEXEC, 0o640)
            guard fd >= 0 else {
                let message = "pier: open \(path): \(String(cString: strerror(errno)))\n"
                _ = message.withCString { write(report, $0, strlen($0)) }
                _exit(126)
            }
            dup2(fd, target)
            close(fd)
        }
        switch output {
        case .inherit: break
        case .inheritOutput:
            redirect(STDIN_FILENO, to: "/dev/null", flags: O_RDONLY)
        case .log(let path):
            redirect(STDIN_FILENO, to: "/dev/null", flags: O_RDONLY)
            redirect(STDOUT_FILENO, to: path, flags: O_WRONLY | O_CREAT | O_APPEND)
            dup2(STDOUT_FILENO, STDERR_FILENO)
        case .discard:
            redirect(STDIN_FILENO, to: "/dev/null", flags: O_RDONLY)
            redirect(STDOUT_FILENO, to: "/dev/null", flags: O_WRONLY)
            dup2(STDOUT_FILENO, STDERR_FILENO)
        }
        if report != 3 {
            dup2(report, 3)
            close(report)
        }
        for descriptor in inherited where descriptor > 3 && descriptor != report { close(descriptor) }
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        for number in 1..<Int32(65) where number != SIGKILL && number != SIGSTOP { signal(number, SIG_DFL) }
        if newSession { setsid() }
    }

    /// Reads the child's failure report until exec closes the pipe: empty means it exec'd.
    fileprivate static func awaitReport(of pid: pid_t, on descriptor: Int32) throws(RuntimeError) {
        let report = PluginExec.readToEnd(descriptor)
        guard !report.isEmpty else { return }
        let code = wait(pid)
        let message = String(decoding: report, as: UTF8.self).trimmingSuffixNewlines()
        throw RuntimeError.commandFailed(
            message.hasPrefix("pier: ") ? String(message.dropFirst(6)) : message, exitCode: code)
    }

    /// The descriptors open in this process now (the directory's own, closed again, filtered out).
    static func openDescriptors() -> [Int32] {
        Files.list("/proc/self/fd").compactMap { Int32($0) }.filter { fcntl($0, F_GETFD) >= 0 }
    }

    /// Waits for a child; returns its exit code (128 + signal when killed, as shells report it).
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

extension String {
    func trimmingSuffixNewlines() -> String {
        var text = self
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
