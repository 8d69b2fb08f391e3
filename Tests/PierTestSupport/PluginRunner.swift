import Foundation

/// Where the built executables are: beside the test bundle in `.build/<config>/`, unless
/// `PIER_BIN_DIR` says otherwise (for testing an installed build). A build makes one plugin
/// executable, `pier-cni`; the plugin names are linked to it here, as `scripts/install` links
/// them in a CNI directory, so tests exec every plugin by its own name as a runtime does.
public let builtProductsDirectory: String = {
    if let dir = ProcessInfo.processInfo.environment["PIER_BIN_DIR"], !dir.isEmpty { return dir }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // The runner lives in PierPackageTests.xctest/ (a file on Linux, a bundle elsewhere).
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("pier").path) {
        url.deleteLastPathComponent()
    }
    linkPluginNames(in: url.path)
    return url.path
}()

/// Hard-links every plugin name (`pier-cni --list`) to `pier-cni` in `directory`, replacing
/// a stale file of that name atomically (link to a temporary name, rename over).
func linkPluginNames(in directory: String) {
    let multiCall = directory + "/pier-cni"
    guard FileManager.default.isExecutableFile(atPath: multiCall),
        let names = try? runCommand([multiCall, "--list"]).stdout.split(separator: "\n")
    else { return }
    var target = stat()
    guard stat(multiCall, &target) == 0 else { return }
    for name in names {
        let path = directory + "/" + name
        var existing = stat()
        if stat(path, &existing) == 0, existing.st_ino == target.st_ino, existing.st_dev == target.st_dev { continue }
        let temporary = path + ".link-\(getpid())"
        unlink(temporary)
        if link(multiCall, temporary) == 0, rename(temporary, path) != 0 { unlink(temporary) }
    }
}

/// What a CNI plugin printed and how it exited.
public struct PluginOutput: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    /// stdout as a JSON object (the Result, the VERSION answer or the Error).
    public var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any] ?? [:]
    }

    /// The CNI error code when the plugin failed, else nil.
    public var errorCode: Int? { status == 0 ? nil : object["code"] as? Int }
}

/// Runs a built plugin exactly as a runtime does: the verb and attachment in `CNI_*`
/// variables, the config on stdin, inside the namespace of `host` (the runtime's netns).
public struct PluginRunner: Sendable {
    public let plugin: String
    public var pluginDirectory: String = builtProductsDirectory
    public var extraEnvironment: [String: String] = [:]

    public init(_ plugin: String) { self.plugin = plugin }

    public func run(
        _ command: String, config: String, containerID: String = "", netns: String = "",
        ifname: String = "", args: String = "", in host: TestHost? = nil
    ) throws -> PluginOutput {
        var env: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
            "CNI_COMMAND": command,
            "CNI_PATH": pluginDirectory,
        ]
        if !containerID.isEmpty { env["CNI_CONTAINERID"] = containerID }
        if !netns.isEmpty { env["CNI_NETNS"] = netns }
        if !ifname.isEmpty { env["CNI_IFNAME"] = ifname }
        if !args.isEmpty { env["CNI_ARGS"] = args }
        env.merge(extraEnvironment) { _, new in new }
        let binary = pluginDirectory + "/" + plugin
        let argv: [String]
        if let host {
            argv = ["/usr/bin/env"] + env.map { "\($0.key)=\($0.value)" }.sorted()
            let result = try host.run(argv + [binary], stdin: config, environment: nil)
            return PluginOutput(status: result.status, stdout: result.stdout, stderr: result.stderr)
        }
        let result = try runCommand([binary], stdin: config, environment: env)
        return PluginOutput(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }
}
