import Glibc
import Synchronization

/// How a plugin process ended and what it printed on stdout.
public struct PluginExecution: Sendable, Equatable {
    public var stdout: [UInt8]
    /// The exit code, or nil when the process was killed by a signal.
    public var exitCode: Int32?
    /// The terminating signal, when there was one.
    public var signal: Int32?

    public var succeeded: Bool { exitCode == 0 }

    /// Go's `exec` wording, which runtimes and users already know.
    public var statusDescription: String {
        if let exitCode { return "exit status \(exitCode)" }
        return "signal: \(signal ?? 0)"
    }
}

/// Finding and running plugin binaries the way libcni does; used by the runtime for conflists and by
/// plugins for delegation.
public enum PluginExec {
    /// The plugin executable this process stands for, for what it runs or starts as itself (an
    /// in-process IPAM, a daemon exec'd under another name): itself, except in a child `pier`
    /// forked to run a verified `pier-cni` in-process, which names that file here.
    nonisolated(unsafe) public static var ownExecutable = "/proc/self/exe"

    /// Attempts when `exec` meets "text file busy", which happens while a plugin binary is being
    /// replaced; libcni retries the same way.
    static let textBusyAttempts = 6

    /// The first regular file named `name` in `directories`.
    public static func find(_ name: String, in directories: [String]) throws(CNIError) -> String {
        guard !name.isEmpty else { throw CNIError(.invalidNetworkConfig, "no plugin name provided") }
        guard !name.contains("/") else {
            throw CNIError(.invalidNetworkConfig, "invalid plugin name \"\(name)\": must not contain '/'")
        }
        guard !directories.isEmpty else { throw CNIError(.internalError, "no paths provided") }
        for directory in directories {
            let candidate = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            var info = stat()
            if stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG { return candidate }
        }
        throw CNIError(
            .internalError, "failed to find plugin \"\(name)\" in path [\(directories.joined(separator: " "))]")
    }

    /// Runs a plugin and returns its verdict: stdout on success, its Error document rethrown on failure.
    public static func run(path: String, environment: [String: String], stdin: [UInt8]) throws(CNIError) -> [UInt8] {
        let execution = try spawn(path: path, environment: environment, stdin: stdin)
        guard execution.succeeded else { throw failure(of: execution) }
        return execution.stdout
    }

    /// Asks a plugin which versions it speaks, as libcni's `GetVersionInfo` does. A plugin older than
    /// the VERSION verb answers "unknown CNI_COMMAND: VERSION" and only spoke 0.1.0.
    public static func versionInfo(path: String, environment: [String: String]) throws(CNIError) -> VersionInfo {
        var environment = environment
        environment["CNI_COMMAND"] = CNICommand.version.rawValue
        // libcni sends the newest version it speaks; the plugin may echo it.
        let stdin = JSONValue.object(["cniVersion": .string(CNIVersion.current)]).encodedBytes
        do {
            let stdout = try run(path: path, environment: environment, stdin: stdin)
            return try VersionInfo(decoding: stdout)
        } catch {
            if error.msg == "unknown CNI_COMMAND: VERSION" {
                return VersionInfo(cniVersion: CNIVersion.implied, supportedVersions: [CNIVersion.implied])
            }
            throw error
        }
    }

    /// The spec error a failed plugin reported, or one describing why it could not be read.
    public static func failure(of execution: PluginExecution) -> CNIError {
        guard !execution.stdout.isEmpty else {
            return CNIError(.internalError, "netplugin failed with no error message: \(execution.statusDescription)")
        }
        let text = String(decoding: execution.stdout, as: UTF8.self)
        do {
            if let error = CNIError(json: try JSONValue(parsing: execution.stdout)) { return error }
            return CNIError(
                .internalError, "netplugin failed but error parsing its diagnostic message \"\(text)\": not an Error")
        } catch {
            return CNIError(
                .internalError, "netplugin failed but error parsing its diagnostic message \"\(text)\": \(error)")
        }
    }

    /// Starts `path` with exactly `environment`, feeds it `stdin`, lets its stderr through to ours (or
    /// to `stderr`) and collects its stdout until it exits. `arguments` is its argv (default: the path).
    public static func spawn(
        path: String, arguments: [String]? = nil, environment: [String: String], stdin: [UInt8],
        stderr: Int32? = nil
    ) throws(CNIError) -> PluginExecution {
        let input = try StdinFile(stdin)
        defer { close(input.descriptor) }
        let (readEnd, writeEnd) = try makePipe()
        defer { close(readEnd) }

        var pid = pid_t()
        var spawnError: Int32 = 0
        do {
            defer { close(writeEnd) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, input.descriptor, STDIN_FILENO)
            posix_spawn_file_actions_adddup2(&actions, writeEnd, STDOUT_FILENO)
            if let stderr { posix_spawn_file_actions_adddup2(&actions, stderr, STDERR_FILENO) }

            let arguments = arguments ?? [path]
            let variables = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            for attempt in 1...textBusyAttempts {
                spawnError = withCStrings(arguments) { argv in
                    withCStrings(variables) { envp in posix_spawn(&pid, path, &actions, nil, argv, envp) }
                }
                guard spawnError == ETXTBSY, attempt < textBusyAttempts else { break }
                sleep(1)
            }
        }
        guard spawnError == 0 else {
            throw CNIError(.internalError, "exec \(path): \(String(cString: strerror(spawnError)))")
        }

        return try collect(pid: pid, stdout: readEnd, name: path)
    }

    /// Reads a started plugin's stdout to its end and waits for it: the one way an exec'd plugin and
    /// one `pier` forked to run in-process are both turned into a `PluginExecution`. `reportedExit`,
    /// when given, is read after stdout: a forked plugin writes its exit code there before it exits, so
    /// the caller need not wait while the kernel tears down the child's copy of its address space; the
    /// child is then left for `reapExited()`. Without a report (or when it is cut short) the child is
    /// waited for.
    public static func collect(
        pid: pid_t, stdout readEnd: Int32, name path: String, reportedExit: Int32? = nil
    ) throws(CNIError) -> PluginExecution {
        let stdout = readToEnd(readEnd)
        if let reportedExit {
            let report = readToEnd(reportedExit)
            if report.count == 4 {
                let code = report.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
                unreaped.withLock { $0.append(pid) }
                reapExited()
                return PluginExecution(stdout: stdout, exitCode: code, signal: nil)
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw systemError("waiting for \(path)") }
        }
        // The WIFEXITED/WEXITSTATUS macros do not import into Swift.
        let terminatingSignal = status & 0x7f
        if terminatingSignal == 0 {
            return PluginExecution(stdout: stdout, exitCode: (status >> 8) & 0xff, signal: nil)
        }
        return PluginExecution(stdout: stdout, exitCode: nil, signal: terminatingSignal)
    }

    /// Children that reported their exit and may not have finished exiting.
    private static let unreaped = Mutex<[pid_t]>([])

    /// Reaps the children `collect` left behind once they have exited; `waiting` waits for them all.
    public static func reapExited(waiting: Bool = false) {
        unreaped.withLock { pids in
            pids.removeAll { pid in
                var status: Int32 = 0
                var result = waitpid(pid, &status, waiting ? 0 : WNOHANG)
                while result < 0 && errno == EINTR { result = waitpid(pid, &status, waiting ? 0 : WNOHANG) }
                return result != 0
            }
        }
    }

    /// Everything readable from `descriptor` until end-of-file (or an error).
    public static func readToEnd(_ descriptor: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes.append(contentsOf: buffer[0..<count])
            } else if count == 0 || errno != EINTR {
                return bytes
            }
        }
    }

    /// `pipe2` is not visible to Swift, so close-on-exec is set right after creation.
    public static func makePipe() throws(CNIError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw systemError("creating a pipe") }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        return (ends[0], ends[1])
    }

    static func systemError(_ action: String) -> CNIError {
        CNIError(.ioFailure, "\(action): \(String(cString: strerror(errno)))")
    }
}

/// Stdin for a child, written in full before it starts so the parent never has to feed one pipe while
/// draining another. Small inputs (every realistic config) go through a pipe, which holds 64 KiB
/// without blocking; larger ones through an unlinked temporary file.
private struct StdinFile {
    static let pipeCapacity = 65536
    let descriptor: Int32

    init(_ bytes: [UInt8]) throws(CNIError) {
        if bytes.count <= StdinFile.pipeCapacity {
            let (readEnd, writeEnd) = try PluginExec.makePipe()
            defer { close(writeEnd) }
            try StdinFile.write(bytes, to: writeEnd, closingOnError: readEnd)
            descriptor = readEnd
        } else {
            var template = Array("/tmp/cni-stdin-XXXXXX".utf8CString)
            let file = template.withUnsafeMutableBufferPointer { buffer -> Int32 in
                guard let base = buffer.baseAddress else { return -1 }
                let file = mkstemp(base)
                if file >= 0 { unlink(base) }
                return file
            }
            guard file >= 0 else { throw PluginExec.systemError("creating the stdin buffer") }
            _ = fcntl(file, F_SETFD, FD_CLOEXEC)
            try StdinFile.write(bytes, to: file, closingOnError: file)
            // The child inherits the file offset, so it must start reading from the beginning.
            guard lseek(file, 0, SEEK_SET) == 0 else {
                let error = PluginExec.systemError("rewinding the stdin buffer")
                close(file)
                throw error
            }
            descriptor = file
        }
    }

    private static func write(_ bytes: [UInt8], to target: Int32, closingOnError owned: Int32) throws(CNIError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes {
                Glibc.write(target, $0.baseAddress.map { $0 + offset }, bytes.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                let error = PluginExec.systemError("writing the stdin buffer")
                close(owned)
                throw error
            }
            offset += written
        }
    }
}

/// A NULL-terminated `char *[]` that lives for the duration of `body`.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) }
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers + [nil])
}
