import Glibc
import PierState

/// Where the runtime keeps and finds things. Every path can be overridden, and tests always do.
public struct RuntimeEnvironment: Sendable {
    /// Container records, the lock and per-container files.
    public var root: String
    /// libcni's cache layout lives below: `<cacheDir>/results/...`.
    public var cacheDirectory: String
    /// Network configs (`*.conflist`, `*.conf`, `*.json`).
    public var configDirectory: String
    /// Plugin search path, in order.
    public var pluginPath: [String]
    /// Where container network namespaces are bind-mounted; `/run/netns` so that `ip netns` lists them.
    public var netnsDirectory: String
    /// The `pier` binary, re-executed for `__init` and `__reap`.
    public var executable: String

    public init(
        root: String? = nil, cacheDirectory: String? = nil, configDirectory: String? = nil,
        pluginPath: [String]? = nil, netnsDirectory: String? = nil, environment: [String: String] = processEnvironment()
    ) {
        let executable = RuntimeEnvironment.currentExecutable()
        self.executable = executable
        self.root = root ?? DefaultPaths.stateRoot
        self.cacheDirectory = cacheDirectory ?? DefaultPaths.cacheDirectory
        self.configDirectory = configDirectory ?? RuntimeEnvironment.defaultConfigDirectory(executable: executable)
        if let pluginPath {
            self.pluginPath = pluginPath
        } else if let fromEnvironment = environment["CNI_PATH"], !fromEnvironment.isEmpty {
            self.pluginPath = fromEnvironment.split(separator: ":").map(String.init)
        } else {
            self.pluginPath = [directoryName(executable), DefaultPaths.cniBinDirectory]
        }
        self.netnsDirectory = netnsDirectory ?? DefaultPaths.netnsDirectory
    }

    public var containersDirectory: String { StateLayout(root: root).containersDirectory }
    public var lockPath: String { StateLayout(root: root).lockPath }

    /// `/proc/self/exe` resolved, so children run the very binary that is running now.
    static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments.first ?? "pier" }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Run from a source checkout (`.build/debug/pier`), the checkout's `conf/` is the natural
    /// default; an installed `pier` uses the standard CNI directory.
    static func defaultConfigDirectory(executable: String) -> String {
        var directory = directoryName(executable)
        while directory != "/" && !directory.isEmpty {
            if isDirectory(directory + "/conf") && fileExists(directory + "/Package.swift") {
                return directory + "/conf"
            }
            directory = directoryName(directory)
        }
        return DefaultPaths.configDirectory
    }
}

/// The process environment as a dictionary (plugins inherit it, as libcni passes `os.Environ()`).
public func processEnvironment() -> [String: String] {
    var variables: [String: String] = [:]
    var cursor = environ
    while let entry = cursor.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            variables[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        cursor += 1
    }
    return variables
}

func directoryName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}

func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
}

func isDirectory(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
}
