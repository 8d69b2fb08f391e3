import Glibc

/// Everything a plugin needs for one invocation: the validated environment and the parsed config.
public struct CNIRequest: Sendable {
    public var environment: CNIEnvironment
    public var config: NetworkConfig

    public init(environment: CNIEnvironment, config: NetworkConfig) {
        self.environment = environment
        self.config = config
    }

    public var command: CNICommand { environment.command }
    public var containerID: String { environment.containerID }
    public var netns: String { environment.netns }
    public var ifName: String { environment.ifName }
    public var cniVersion: String { config.cniVersion }
    public var prevResult: CNIResult? { config.prevResult }
    /// The exact stdin bytes, which delegates must receive unchanged.
    public var stdin: [UInt8] { config.bytes }
}

/// What a plugin binary implements. The runner does everything the protocol asks around it: env and
/// config validation, version rules, output and error encoding. Methods may throw any error; a
/// `CNIError` or `CNIErrorConvertible` keeps its code, anything else becomes code 999.
public protocol CNIPlugin {
    /// One line for a human who runs the binary by hand (`CNI bridge plugin v1.0`).
    var about: String { get }
    /// Defaults to every version this library speaks.
    var supportedVersions: [String] { get }
    /// Whether `CNI_NETNS` may be the plugin's own network namespace. Only a plugin whose purpose is
    /// to attach to the host namespace (the `host` plugin) should say yes.
    var acceptsOwnNetworkNamespace: Bool { get }

    /// Returns the result to print; the runner prints it in the request's `cniVersion`.
    func add(_ request: CNIRequest) throws -> CNIResult
    func delete(_ request: CNIRequest) throws
    func check(_ request: CNIRequest) throws
    /// Defaults to success, like skel with no GC callback.
    func garbageCollect(_ request: CNIRequest) throws
    /// Defaults to success, like skel with no STATUS callback.
    func status(_ request: CNIRequest) throws
}

extension CNIPlugin {
    public var supportedVersions: [String] { CNIVersion.all }
    public var acceptsOwnNetworkNamespace: Bool { false }
    public func garbageCollect(_ request: CNIRequest) throws {}
    public func status(_ request: CNIRequest) throws {}

    /// The whole life of a plugin process: reads the real environment and stdin, writes stdout and
    /// stderr, and exits with the runner's code.
    public func main() -> Never {
        let environment = ProcessEnvironment.current()
        // Someone typing `CNI_COMMAND=VERSION ./bridge` at a terminal must get an answer, not a wait
        // for input that VERSION does not need.
        let skipStdin = environment["CNI_COMMAND"] == CNICommand.version.rawValue && isatty(STDIN_FILENO) == 1
        let outcome = PluginRunner.run(
            self, environment: environment,
            readStdin: { () throws(CNIError) in skipStdin ? [] : try readAllStdin() })
        writeAll(outcome.stderr, to: STDERR_FILENO)
        writeAll(outcome.stdout, to: STDOUT_FILENO)
        exit(outcome.exitCode)
    }
}

/// What the process should emit: stdout holds at most one JSON document.
public struct PluginOutcome: Sendable, Equatable {
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    public var exitCode: Int32

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// The protocol machinery around a plugin, split from process I/O so that tests can drive it.
public enum PluginRunner {
    public static func run(_ plugin: some CNIPlugin, environment: [String: String], stdin: [UInt8]) -> PluginOutcome {
        run(plugin, environment: environment, readStdin: { () throws(CNIError) in stdin })
    }

    public static func run(
        _ plugin: some CNIPlugin, environment: [String: String], readStdin: () throws(CNIError) -> [UInt8]
    ) -> PluginOutcome {
        if (environment["CNI_COMMAND"] ?? "").isEmpty {
            let text =
                "\(plugin.about)\nCNI protocol versions supported: \(plugin.supportedVersions.joined(separator: ", "))\n"
            return PluginOutcome(stdout: [], stderr: Array(text.utf8), exitCode: 0)
        }
        var inputVersion: String?
        do throws(CNIError) {
            let env = try CNIEnvironment(environment)
            if env.command == .version {
                // Skel ignores stdin for VERSION entirely, so not even a read failure may fail it.
                return answerVersion(plugin, stdin: (try? readStdin()) ?? [])
            }
            let stdin = try readStdin()
            let config = try NetworkConfig(bytes: stdin)
            inputVersion = config.cniVersion
            try env.validateAttachment()
            try CNIVersion.checkSupported(config.cniVersion, supported: plugin.supportedVersions)
            if let minimum = env.command.minimumVersion, try !CNIVersion.isAtLeast(config.cniVersion, minimum) {
                throw CNIError(.incompatibleVersion, "config version does not allow \(env.command.rawValue)")
            }
            if [.add, .delete].contains(env.command), !plugin.acceptsOwnNetworkNamespace,
                !netnsOverride(environment["CNI_NETNS_OVERRIDE"])
            {
                try NetworkNamespaceCheck.rejectOwnNamespace(env.netns)
            }
            let request = CNIRequest(environment: env, config: config)
            var stdout: [UInt8] = []
            do {
                switch env.command {
                case .add: stdout = try plugin.add(request).encodedBytes(version: config.cniVersion)
                case .delete: try plugin.delete(request)
                case .check: try plugin.check(request)
                case .garbageCollect: try plugin.garbageCollect(request)
                case .status: try plugin.status(request)
                case .version: break
                }
            } catch {
                throw CNIError(converting: error)
            }
            return PluginOutcome(stdout: stdout, stderr: [], exitCode: 0)
        } catch {
            return PluginOutcome(stdout: error.json(cniVersion: inputVersion).encodedBytes, stderr: [], exitCode: 1)
        }
    }

    /// Stdin does not matter for VERSION except to echo a version the caller asked in, when it is one
    /// this plugin knows.
    static func answerVersion(_ plugin: some CNIPlugin, stdin: [UInt8]) -> PluginOutcome {
        var version = CNIVersion.current
        if let asked = (try? JSONValue(parsing: stdin))?["cniVersion"]?.stringValue,
            plugin.supportedVersions.contains(asked)
        {
            version = asked
        }
        let info = VersionInfo(cniVersion: version, supportedVersions: plugin.supportedVersions)
        return PluginOutcome(stdout: info.json.encodedBytes, stderr: [], exitCode: 0)
    }

    static func netnsOverride(_ value: String?) -> Bool {
        guard let value else { return false }
        return value == "1" || value.lowercased() == "true"
    }
}

/// Skel's safety net against a runtime passing the plugin's own namespace, where a plugin would
/// otherwise reconfigure the host's interfaces.
enum NetworkNamespaceCheck {
    /// A path that cannot be inspected is left to the plugin, which will report it in context (and DEL
    /// of a gone namespace must succeed).
    static func rejectOwnNamespace(_ path: String, ownPath: String = "/proc/self/ns/net") throws(CNIError) {
        guard !path.isEmpty, let target = identity(of: path), let own = identity(of: ownPath) else { return }
        if target == own {
            throw CNIError(.invalidNetNS, "plugin's netns and netns from CNI_NETNS should not be the same")
        }
    }

    static func identity(of path: String) -> [UInt64]? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return [UInt64(info.st_dev), UInt64(info.st_ino)]
    }
}

enum ProcessEnvironment {
    static func current() -> [String: String] {
        var variables: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let separator = text.firstIndex(of: "=") {
                let key = String(text[..<separator])
                // The first definition wins, as getenv(3) resolves duplicates.
                if variables[key] == nil { variables[key] = String(text[text.index(after: separator)...]) }
            }
            cursor += 1
        }
        return variables
    }
}

func readAllStdin() throws(CNIError) -> [UInt8] {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
        if count == 0 { return data }
        if count < 0 {
            if errno == EINTR { continue }
            throw CNIError(.ioFailure, "error reading from stdin: \(String(cString: strerror(errno)))")
        }
        data.append(contentsOf: buffer[0..<count])
    }
}

func writeAll(_ bytes: [UInt8], to descriptor: Int32) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes {
            write(descriptor, $0.baseAddress.map { $0 + offset }, bytes.count - offset)
        }
        if written < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += written
    }
}

/// Plugin diagnostics: stderr is free-form and never parsed, unlike stdout.
public func cniLog(_ message: String) {
    writeAll(Array((message + "\n").utf8), to: STDERR_FILENO)
}
