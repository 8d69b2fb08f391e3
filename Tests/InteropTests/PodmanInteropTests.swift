import Foundation
import PierTestSupport
import Testing

/// Podman 4.3 with its CNI backend, pointed at the plugin directory under test, running inside
/// a test host's network namespace with private storage and config. Podman writes its own
/// conflist (bridge with host-local, portmap, firewall, tuning); the test uses it unmodified.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(2)))
struct PodmanInteropTests {
    static let plugins = ["bridge", "host-local", "portmap", "firewall", "tuning"]

    @Test func podmanNetworkCreateRunPublishAndRemoveLeaveNothingBehind() throws {
        try withPluginsRequired(Self.plugins, by: "Podman's CNI backend") {
            try withTestHosts(2) { hosts in
                let scratch = try ScratchDirectory("podman")
                defer { scratch.remove() }
                let podman = try PodmanWorld(host: hosts[0], outside: hosts[1], scratch: scratch)
                defer { podman.tearDown() }
                try podman.exercise()
            }
        }
    }
}

/// One Podman instance (private root, runroot, tmp dir, locks and network config dir) driving
/// the plugins of the directory under test through a logging shim, plus an outside host.
final class PodmanWorld: @unchecked Sendable {
    let host: TestHost
    let outside: TestHost
    let scratch: ScratchDirectory
    let calls: PluginCallLog
    let network = "pier-interop-\(uniqueTag(6))"
    let image = "localhost/pier-interop-busybox:\(uniqueTag(6))"
    let hostAddress = "10.231.0.1"
    let outsideAddress = "10.231.0.2"
    private var sandboxKeys: [String] = []
    private let environment: [String: String]

    /// Where host-local keeps this network's leases (Podman does not set dataDir).
    var leaseDirectory: String { "/var/lib/cni/networks/\(network)" }

    init(host: TestHost, outside: TestHost, scratch: ScratchDirectory) throws {
        self.host = host
        self.outside = outside
        self.scratch = scratch
        calls = try PluginCallLog(wrapping: InteropPlugins.directory, plugins: PodmanInteropTests.plugins, in: scratch)
        for directory in ["root", "runroot", "tmp", "net.d"] { _ = try scratch.makeDirectory(directory) }
        // The runtime is runc: crun refuses this machine's hybrid cgroup layout. The ulimits stay
        // below the test runner's hard limits, which podman's defaults exceed. File locks keep
        // this instance's lock IDs apart from any other podman's shared-memory locks.
        try scratch.write(
            "containers.conf",
            """
            [containers]
            log_driver = "k8s-file"
            default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
            pids_limit = 0
            [network]
            network_backend = "cni"
            cni_plugin_dirs = ["\(calls.shimDirectory)"]
            network_config_dir = "\(scratch.file("net.d"))"
            [engine]
            cgroup_manager = "cgroupfs"
            events_logger = "file"
            events_logfile_path = "\(scratch.file("events.log"))"
            tmp_dir = "\(scratch.file("tmp"))"
            lock_type = "file"
            runtime = "runc"
            """)
        try scratch.write(
            "storage.conf",
            """
            [storage]
            driver = "vfs"
            graphroot = "\(scratch.file("root"))"
            runroot = "\(scratch.file("runroot"))"
            """)
        environment = processEnvironment(adding: [
            "CONTAINERS_CONF": scratch.file("containers.conf"),
            "CONTAINERS_STORAGE_CONF": scratch.file("storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": "/dev/null",
        ])
        try connect(host, "up0", to: outside, "eth0")
        try host.mustRun(["ip", "addr", "add", "\(hostAddress)/24", "dev", "up0"])
        try outside.mustRun(["ip", "addr", "add", "\(outsideAddress)/24", "dev", "eth0"])
    }

    /// `podman ARGS` inside the host's namespace; throws with podman's output unless it exits 0.
    @discardableResult
    func podman(_ args: [String], timeout: Double = 90) throws -> String {
        let argv = ["podman"] + args
        let result = try runInNetns(host, argv, environment: environment, timeout: timeout)
        try result.throwUnlessSucceeded(argv.joined(separator: " "))
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func exercise() throws {
        let rootfs = try scratch.makeDirectory("rootfs")
        try makeBusyboxRootfs(at: rootfs)
        try PierTestSupport.mustRun(["tar", "-C", rootfs, "-cf", scratch.file("rootfs.tar"), "."])
        try podman(["import", scratch.file("rootfs.tar"), image])

        // The conflist Podman 4.3 generates, used as it is.
        try podman(["network", "create", network])
        let conflistPath = scratch.file("net.d/\(network).conflist")
        let conflist = try #require(
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: conflistPath))))
                as? [String: Any], "podman wrote no \(conflistPath)")
        let plugins = conflist["plugins"] as? [[String: Any]] ?? []
        #expect(plugins.compactMap { $0["type"] as? String } == ["bridge", "portmap", "firewall", "tuning"])
        #expect((plugins.first?["ipam"] as? [String: Any])?["type"] as? String == "host-local")
        let bridge = try #require(plugins.first?["bridge"] as? String)

        var addresses: [String: String] = [:]
        var ids: [String: String] = [:]
        for (name, port) in [("c1", 8081), ("c2", 8082)] {
            ids[name] = try podman([
                "run", "-d", "--name", name, "--network", network, "-p", "\(port):80", image,
                "sh", "-c", "echo hello-\(name) > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
            ])
            let inspected = try podman(["inspect", name, "--format", "{{json .NetworkSettings}}"])
            let settings = try #require(
                try JSONSerialization.jsonObject(with: Data(inspected.utf8)) as? [String: Any])
            let networks = settings["Networks"] as? [String: [String: Any]] ?? [:]
            let address = try #require(networks[network]?["IPAddress"] as? String, "no address: \(inspected)")
            #expect(networks[network]?["IPPrefixLen"] as? Int == 24)
            addresses[name] = address
            let sandboxKey = try #require(settings["SandboxKey"] as? String)
            sandboxKeys.append(sandboxKey)
            // The container's eth0 carries the address Podman reports.
            let eth0 = try PierTestSupport.mustRun([
                "nsenter", "--net=\(sandboxKey)", "ip", "-j", "addr", "show", "dev", "eth0",
            ]).stdout
            #expect(eth0.contains("\"local\":\"\(address)\""), "\(name) eth0: \(eth0)")
        }
        let (c1, c2) = (try #require(addresses["c1"]), try #require(addresses["c2"]))
        #expect(c1 != c2)
        #expect(try links(ofType: "veth", in: host).count == 2)
        #expect(Set(leaseFiles(in: leaseDirectory)) == [c1, c2])

        // Container to container across the bridge.
        let reply = try podman([
            "exec", "c1", "sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \(c2) 80",
        ])
        #expect(reply.contains("hello-c2"), "c1 -> c2: \(reply)")

        // Published ports, from another namespace and from the host through its own address.
        #expect(httpGet(from: outside, address: hostAddress, port: 8081) == "hello-c1\n")
        #expect(httpGet(from: outside, address: hostAddress, port: 8082) == "hello-c2\n")
        #expect(httpGet(from: host, address: hostAddress, port: 8082) == "hello-c2\n")

        // What Podman executed: ADD through the whole chain for each container (host-local is
        // the bridge's delegate: its leases are checked above, not how it is called).
        let adds = calls.calls().filter { $0.command == "ADD" }
        for plugin in ["bridge", "portmap", "firewall", "tuning"] {
            #expect(adds.filter { $0.plugin == plugin }.count == 2, "ADDs of \(plugin): \(adds)")
        }
        #expect(adds.allSatisfy { $0.status == "0" }, "\(adds)")

        try podman(["rm", "-f", "-t", "0", "c1", "c2"])
        try podman(["network", "rm", network])

        #expect(try links(ofType: "veth", in: host).isEmpty)
        #expect(try host.link(bridge) == nil, "podman network rm leaves the bridge \(bridge)")
        #expect(leaseFiles(in: leaseDirectory).isEmpty, "leases left: \(leaseFiles(in: leaseDirectory))")
        for key in sandboxKeys {
            #expect(!FileManager.default.fileExists(atPath: key), "netns left: \(key)")
        }
        let ruleset = try nftRuleset(of: host)
        for address in [c1, c2] {
            #expect(!mentions(ruleset, address: address), "nftables still names \(address):\n\(ruleset)")
        }
        for id in ids.values {
            #expect(!ruleset.contains(String(id.prefix(12))), "nftables still names container \(id)")
        }
        let dels = calls.calls().filter { $0.command == "DEL" }
        #expect(dels.allSatisfy { $0.status == "0" }, "\(dels)")
        #expect(!FileManager.default.fileExists(atPath: conflistPath))
    }

    /// Best effort, whatever state the test stopped in; then the last resorts.
    func tearDown() {
        calls.printIfTracing("Podman")
        _ = try? podman(["rm", "-a", "-f", "-t", "0"])
        _ = try? podman(["network", "rm", "-f", network])
        _ = try? podman(["rmi", "-a", "-f"])
        for key in sandboxKeys where FileManager.default.fileExists(atPath: key) {
            _ = try? runCommand(["umount", "-l", key])
            try? FileManager.default.removeItem(atPath: key)
        }
        scratch.remove()
        try? FileManager.default.removeItem(atPath: leaseDirectory)
        // libcni's result cache, should a container have been left without its DEL.
        let cache = "/var/lib/cni/results"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []
        where entry.hasPrefix(network + "-") {
            try? FileManager.default.removeItem(atPath: cache + "/" + entry)
        }
    }
}
