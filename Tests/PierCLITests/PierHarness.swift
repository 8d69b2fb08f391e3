import Foundation
import PierTestSupport
import Testing

/// One isolated `pier` installation inside a test host: its own state root, CNI cache, config
/// directory, lease directory and plugin directory, so tests run in parallel without sharing anything
/// and never touch the root namespace or /var/lib/cni.
///
/// `pier` runs through `nsenter --net` rather than `ip netns exec`: `ip netns exec` gives the command a
/// private mount namespace that dies with it, and the container netns bind mounts `pier` makes would
/// die with it too. With `nsenter --net` only the network namespace changes.
final class PierHarness: @unchecked Sendable {
    let host: TestHost
    let directory: String
    let tag = uniqueTag(6)
    /// Container names this harness handed out, so cleanup can find their namespaces even if `pier`
    /// lost track of them.
    private(set) var containerNames: [String] = []

    var root: String { directory + "/root" }
    var cacheDirectory: String { directory + "/cache" }
    var configDirectory: String { directory + "/conf" }
    var leaseDirectory: String { directory + "/leases" }
    var pluginDirectory: String { directory + "/bin" }

    /// The IPAM plugin the networks use: Pier's `ipam` when the built one speaks CNI, otherwise the
    /// reference `host-local` (same on-disk layout), which speaks at most CNI 1.0.0.
    static let ipamPlugin: (type: String, path: String, cniVersion: String) = {
        let built = builtProductsDirectory + "/ipam"
        let version = try? runCommand([built], environment: ["CNI_COMMAND": "VERSION"])
        if let version, version.succeeded, version.stdout.contains("supportedVersions") {
            return ("ipam", built, "1.1.0")
        }
        return ("host-local", "/usr/lib/cni/host-local", "1.0.0")
    }()

    static var portmapBuilt: Bool { FileManager.default.isExecutableFile(atPath: builtProductsDirectory + "/portmap") }

    /// Whether `cleanUp` destroys the test host (a cluster owns the hosts it lends).
    private let ownsHost: Bool

    init(in lent: TestHost? = nil) throws {
        host = try lent ?? TestHost()
        ownsHost = lent == nil
        directory = NSTemporaryDirectory() + "pier-cli-\(uniqueTag())"
        for path in [configDirectory, leaseDirectory, pluginDirectory] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        // Exactly the plugins under test, nothing picked up by accident from elsewhere on CNI_PATH.
        var plugins = [
            "bridge": builtProductsDirectory + "/bridge", PierHarness.ipamPlugin.type: PierHarness.ipamPlugin.path,
        ]
        if PierHarness.portmapBuilt { plugins["portmap"] = builtProductsDirectory + "/portmap" }
        for (name, target) in plugins {
            try FileManager.default.createSymbolicLink(
                atPath: pluginDirectory + "/" + name, withDestinationPath: target)
        }
    }

    /// A fresh container name; remembered for cleanup.
    func name(_ base: String) -> String {
        let name = "\(base)-\(tag)"
        containerNames.append(name)
        return name
    }

    /// Writes a bridge network `name` on `subnet` (a /24 in 10.221–10.229), optionally with portmap.
    @discardableResult
    func addNetwork(
        _ name: String, subnet: String, portmap: Bool = false, file: String? = nil, cniVersion: String? = nil,
        defaultGateway: Bool = false, capabilities: [String] = []
    ) throws -> String {
        let ipam = PierHarness.ipamPlugin
        var bridge: [String: Any] = [
            "type": "bridge", "bridge": "pbr\(uniqueTag(6))", "isGateway": true, "ipMasq": true,
            "ipam": ["type": ipam.type, "dataDir": leaseDirectory, "ranges": [[["subnet": subnet]]]],
        ]
        if defaultGateway { bridge["isDefaultGateway"] = true }
        if !capabilities.isEmpty {
            bridge["capabilities"] = Dictionary(uniqueKeysWithValues: capabilities.map { ($0, true) })
        }
        var plugins: [[String: Any]] = [bridge]
        if portmap { plugins.append(["type": "portmap", "capabilities": ["portMappings": true]]) }
        let list: [String: Any] = ["cniVersion": cniVersion ?? ipam.cniVersion, "name": name, "plugins": plugins]
        let data = try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: configDirectory + "/" + (file ?? "50-\(name).conflist")))
        return name
    }

    /// Runs `pier` with this harness's paths, inside the test host's network namespace.
    @discardableResult
    func pier(_ arguments: [String], timeout: Double = 60) throws -> CommandResult {
        try runCommand(command(arguments), timeout: timeout)
    }

    /// Runs `pier` and fails the test unless it exits 0.
    @discardableResult
    func mustPier(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        let result = try pier(arguments)
        try #require(
            result.succeeded, "pier \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)",
            sourceLocation: sourceLocation)
        return result
    }

    func command(_ arguments: [String]) -> [String] {
        [
            "nsenter", "--net=\(host.path)", builtProductsDirectory + "/pier", "--root", root, "--cache-dir",
            cacheDirectory, "--config-dir", configDirectory, "--cni-path", pluginDirectory,
        ] + arguments
    }

    /// `ps -a --json` (every container), decoded.
    func containers() throws -> [[String: Any]] {
        let result = try mustPier(["ps", "-a", "--json"])
        return (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]) ?? []
    }

    /// The first IPv4 address of a container, from `ps --json`.
    func address(of name: String) throws -> String? {
        let record = try containers().first { $0["name"] as? String == name }
        let attachments = record?["attachments"] as? [[String: Any]] ?? []
        let addresses = attachments.first?["addresses"] as? [String] ?? []
        return addresses.first?.split(separator: "/").first.map(String.init)
    }

    /// Everything a container could leave behind, listed; empty means clean.
    func leftovers() throws -> [String] {
        var found: [String] = []
        let fm = FileManager.default
        for name in containerNames where fm.fileExists(atPath: "/run/netns/pier-\(name)") {
            found.append("netns pier-\(name)")
        }
        found += try host.linkNames().filter { $0.hasPrefix("veth") }.map { "link \($0)" }
        for network in (try? fm.contentsOfDirectory(atPath: leaseDirectory)) ?? [] {
            let files = (try? fm.contentsOfDirectory(atPath: leaseDirectory + "/" + network)) ?? []
            // The lease index and the owner links are ipam's caches, not leases.
            found += files.filter {
                $0 != "lock" && $0 != ".pier-lease-index" && $0 != ".pier-owners" && !$0.hasPrefix("last_reserved_ip")
            }
            .map { "lease \(network)/\($0)" }
        }
        found += ((try? fm.contentsOfDirectory(atPath: cacheDirectory + "/results")) ?? []).map { "cache \($0)" }
        found += ((try? fm.contentsOfDirectory(atPath: root + "/containers")) ?? []).map { "state \($0)" }
        for network in (try? fm.contentsOfDirectory(atPath: root + "/services")) ?? [] where network != "lock" {
            let records = (try? fm.contentsOfDirectory(atPath: root + "/services/" + network)) ?? []
            found += records.map { "service \(network)/\($0)" }
        }
        return found.sorted()
    }

    /// Removes everything, whatever state the test left: containers through `pier`, then anything
    /// `pier` could not remove by hand, then the test host.
    func cleanUp() {
        for record in (try? containers()) ?? [] {
            if let id = record["id"] as? String { _ = try? pier(["rm", "-f", id]) }
        }
        _ = try? pier(["gc"])
        for name in containerNames {
            let path = "/run/netns/pier-\(name)"
            if FileManager.default.fileExists(atPath: path) {
                _ = try? runCommand(["umount", "-l", path])
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        if ownsHost { host.destroy() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs `body` with a fresh harness that is cleaned up afterwards, even on failure.
func withPier<T>(_ body: (PierHarness) throws -> T) throws -> T {
    let harness = try PierHarness()
    defer { harness.cleanUp() }
    return try body(harness)
}

/// Polls `condition` for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if try condition() { return true }
        usleep(50_000)
    } while Date() < deadline
    return false
}

/// An HTTP GET from inside a test host; the body, or nil when nothing answered.
func httpGet(from host: TestHost, _ url: String, timeout: Int = 2) -> String? {
    guard let result = try? host.run(["curl", "-s", "-m", String(timeout), url]), result.succeeded else { return nil }
    return result.stdout
}
