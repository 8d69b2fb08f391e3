import CNI
import Glibc
import IPAM
import Plugins
import Synchronization

/// Runs Pier's own plugins without exec'ing them: `pier` forks, and the child runs the plugin code
/// `pier` links (the `Plugins` module) with the CNI environment and stdin an exec would have had,
/// writes its stdout to a pipe and exits with the plugin's code. The parent turns that into the same
/// `PluginExecution` an exec gives, so results, errors and the result cache cannot differ; a crash
/// or `exit()` in plugin code ends the child only and is reported as that plugin's failure.
///
/// "Pier's own" is decided exactly: the file the CNI path resolves must answer `--source-digest`
/// (as `pier-cni`) with this `pier`'s `PluginBuild.sourceDigest`, a hash of every source the
/// plugin code is built from. A foreign plugin of the same name, or a `pier-cni` from other
/// sources, is exec'd. The answer is asked once per file (device, inode, size, mtime, ctime) and
/// kept in `<cache directory>/pier-plugin-builds`, so a replaced file is asked again.
final class InProcessPlugins: Sendable {
    /// Where answers are kept; nil keeps them in memory only (one process).
    let answersPath: String?
    /// Whether the process may fork although it runs other threads. Only tests set it: a child of
    /// a multi-threaded process may find a lock held forever by a thread that did not come along.
    let allowThreads: Bool
    private let memory = Mutex<[FileKey: String]>([:])

    init(cacheDirectory: String?, allowThreads: Bool = false) {
        answersPath = cacheDirectory.map { $0 + "/pier-plugin-builds" }
        self.allowThreads = allowThreads
    }

    /// The plugin's execution when it is Pier's own and this process can fork safely; nil means
    /// exec it.
    func execution(path: String, environment: [String: String], stdin: [UInt8]) throws(CNIError)
        -> PluginExecution?
    {
        let name = String(path.split(separator: "/").last ?? "")
        guard let plugin = PluginTable.plugin(named: name), isOwn(path) else { return nil }
        guard allowThreads || Self.isSingleThreaded() else { return nil }
        return try Self.runForked(plugin, executable: path, environment: environment, stdin: stdin)
    }

    /// Whether `path` is a `pier-cni` built from the same plugin sources as this process.
    func isOwn(_ path: String) -> Bool {
        guard let key = FileKey(path) else { return false }
        if let known = memory.withLock({ $0[key] }) { return known == PluginBuild.sourceDigest }
        if let answersPath, let known = Answers.read(answersPath)[key] {
            memory.withLock { $0[key] = known }
            return known == PluginBuild.sourceDigest
        }
        let digest = Self.askDigest(path)
        memory.withLock { $0[key] = digest }
        if let answersPath {
            var answers = Answers.read(answersPath)
            if answers.count >= Answers.kept { answers = [:] }
            answers[key] = digest
            Answers.write(answers, to: answersPath)
        }
        return digest == PluginBuild.sourceDigest
    }

    /// Execs the file as `pier-cni --source-digest` with no CNI variables, so a foreign plugin only
    /// prints its banner (to /dev/null) and its empty or odd stdout matches no digest.
    static func askDigest(_ path: String) -> String {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        guard
            let execution = try? PluginExec.spawn(
                path: path, arguments: [PluginTable.executableName, "--source-digest"], environment: [:], stdin: [],
                stderr: null >= 0 ? null : nil),
            execution.succeeded
        else { return "-" }
        let answer = String(decoding: execution.stdout, as: UTF8.self).split(separator: "\n").first ?? ""
        return answer.count == 64 && answer.allSatisfy(\.isHexDigit) ? String(answer) : "-"
    }

    /// `/proc/self/task` has one entry per thread.
    static func isSingleThreaded() -> Bool {
        guard let directory = opendir("/proc/self/task") else { return false }
        defer { closedir(directory) }
        var threads = 0
        while let entry = readdir(directory) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0.first ?? 0 }
            if first != UInt8(ascii: ".") { threads += 1 }
        }
        return threads == 1
    }

    /// Forks; the child becomes the plugin process an exec would have started (same environment,
    /// same stdin bytes, stdout to the pipe, stderr shared) and never returns.
    static func runForked(
        _ plugin: some CNIPlugin, executable: String, environment: [String: String], stdin: [UInt8]
    ) throws(CNIError) -> PluginExecution {
        let (readEnd, writeEnd) = try PluginExec.makePipe()
        // The exit code, reported before the child exits (`PluginExec.collect`).
        let exitEnds: (read: Int32, write: Int32)
        do { exitEnds = try PluginExec.makePipe() } catch {
            close(readEnd)
            close(writeEnd)
            throw error
        }
        // Buffered output of ours must not be written twice, once by each process.
        fflush(nil)
        let pid = fork()
        if pid == 0 {
            close(readEnd)
            dup2(writeEnd, STDOUT_FILENO)
            close(writeEnd)
            let null = open("/dev/null", O_RDONLY)
            if null >= 0 {
                dup2(null, STDIN_FILENO)
                close(null)
            }
            clearenv()
            for (key, value) in environment { setenv(key, value, 1) }
            // "Is this ipam my own?" and "exec myself as a daemon" must answer as in the exec'd plugin.
            PluginExec.ownExecutable = executable
            let outcome = PluginRunner.run(plugin, environment: environment, stdin: stdin)
            write(all: outcome.stderr, to: STDERR_FILENO)
            write(all: outcome.stdout, to: STDOUT_FILENO)
            fflush(nil)
            // Output and exit code (as `waitpid` would give it) out, then the pipes closed: the parent goes
            // on while this process's copy of `pier`'s memory is torn down.
            write(all: withUnsafeBytes(of: outcome.exitCode & 0xff) { Array($0) }, to: exitEnds.write)
            close(STDOUT_FILENO)
            close(exitEnds.write)
            _exit(outcome.exitCode)
        }
        close(writeEnd)
        close(exitEnds.write)
        defer {
            close(readEnd)
            close(exitEnds.read)
        }
        guard pid > 0 else { throw CNIError(.internalError, "fork for \(executable): \(lastError())") }
        return try PluginExec.collect(pid: pid, stdout: readEnd, name: executable, reportedExit: exitEnds.read)
    }

    private static func write(all bytes: [UInt8], to descriptor: Int32) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes {
                Glibc.write(descriptor, $0.baseAddress.map { $0 + offset }, bytes.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            offset += written
        }
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }
}

/// A file as found at one moment: replacing, rewriting or relinking it changes the key.
struct FileKey: Hashable, Sendable {
    let fields: [Int]

    init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        fields = [
            Int(info.st_dev), Int(info.st_ino), Int(info.st_size), info.st_mtim.tv_sec, info.st_mtim.tv_nsec,
            info.st_ctim.tv_sec, info.st_ctim.tv_nsec,
        ]
    }

    init?(text: Substring) {
        let numbers = text.split(separator: " ").compactMap { Int($0) }
        guard numbers.count == 7 else { return nil }
        fields = numbers
    }

    var text: String { fields.map(String.init).joined(separator: " ") }
}

/// `<key fields> <digest or ->` per line; a full file starts over rather than grow.
enum Answers {
    static let kept = 32

    static func read(_ path: String) -> [FileKey: String] {
        guard let bytes = try? Files.read(path) else { return [:] }
        var answers: [FileKey: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let space = line.lastIndex(of: " "), let key = FileKey(text: line[..<space]) else { continue }
            answers[key] = String(line[line.index(after: space)...])
        }
        return answers
    }

    static func write(_ answers: [FileKey: String], to path: String) {
        let lines = answers.map { "\($0.key.text) \($0.value)\n" }.joined()
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        try? Files.makeDirectories(directory, mode: 0o700)
        try? Files.writeAtomically(Array(lines.utf8), to: path, mode: 0o600)
    }
}
