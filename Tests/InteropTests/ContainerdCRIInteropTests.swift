import Foundation
import PierTestSupport
import Testing

/// containerd 1.6's CRI plugin, driven over its gRPC API by Tests/InteropTests/cri/cri_client.py
/// (what kubelet would do), with `bin_dir` = the plugin directory under test and a kubeadm-style
/// conflist (bridge + host-local, portmap, bandwidth). containerd runs inside a test host's
/// network namespace with private root, state and socket.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(2)))
struct ContainerdCRIInteropTests {
    static let plugins = ["loopback", "bridge", "host-local", "portmap", "bandwidth"]

    @Test func podSandboxGetsLoAndEth0PublishesPortsShapesBandwidthAndStopRemoveLeaveNothing() throws {
        try withPluginsRequired(Self.plugins, by: "containerd's CRI plugin") {
            try withTestHosts(2) { hosts in
                let scratch = try ScratchDirectory("containerd")
                defer { scratch.remove() }
                let world = try ContainerdWorld(host: hosts[0], outside: hosts[1], scratch: scratch)
                defer { world.tearDown() }
                try world.start()
                try world.exercise()
            }
        }
    }
}

/// One containerd (private root, state, socket, CNI conf dir and lease dir) whose CRI plugin
/// executes the plugins under test through a logging shim, plus an outside host.
final class ContainerdWorld: @unchecked Sendable {
    let host: TestHost
    let outside: TestHost
    let scratch: ScratchDirectory
    let calls: PluginCallLog
    let sandboxImage = "localhost/pier-interop-pause:\(uniqueTag(6))"
    let networkName = "pier-interop-k8s-\(uniqueTag(6))"
    let hostAddress = "10.232.0.1"
    let outsideAddress = "10.232.0.2"
    let podSubnetPrefix = "10.232.1."
    private var daemon: DetachedDaemon?
    private var sandboxes: [String] = []

    static let criClient = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("cri/cri_client.py").path

    var socket: String { scratch.file("containerd.sock") }
    var leaseDirectory: String { scratch.file("ipam/\(networkName)") }

    init(host: TestHost, outside: TestHost, scratch: ScratchDirectory) throws {
        self.host = host
        self.outside = outside
        self.scratch = scratch
        calls = try PluginCallLog(
            wrapping: InteropPlugins.directory, plugins: ContainerdCRIInteropTests.plugins, in: scratch)
        for directory in ["net.d", "ipam", "cri-work", "logs"] { _ = try scratch.makeDirectory(directory) }
        // restrict_oom_score_adj: runc may not lower oom_score_adj below the test runner's here.
        // The native snapshotter avoids overlay-on-overlay; netns mounts stay in the state dir.
        try scratch.write(
            "config.toml",
            """
            version = 2
            root = "\(scratch.file("root"))"
            state = "\(scratch.file("state"))"
            disabled_plugins = [
              "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
              "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
              "io.containerd.snapshotter.v1.overlayfs", "io.containerd.tracing.processor.v1.otlp",
            ]
            [grpc]
              address = "\(socket)"
            [ttrpc]
              address = "\(socket).ttrpc"
            [plugins."io.containerd.internal.v1.opt"]
              path = "\(scratch.file("opt"))"
            [plugins."io.containerd.grpc.v1.cri"]
              sandbox_image = "\(sandboxImage)"
              netns_mounts_under_state_dir = true
              restrict_oom_score_adj = true
              stream_server_address = "127.0.0.1"
              stream_server_port = "0"
              [plugins."io.containerd.grpc.v1.cri".cni]
                bin_dir = "\(calls.shimDirectory)"
                conf_dir = "\(scratch.file("net.d"))"
                max_conf_num = 1
              [plugins."io.containerd.grpc.v1.cri".containerd]
                snapshotter = "native"
                default_runtime_name = "runc"
                [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
                  runtime_type = "io.containerd.runc.v2"
            """)
        let conflist: [String: Any] = [
            "cniVersion": "1.0.0", "name": networkName,
            "plugins": [
                [
                    "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
                    "ipam": [
                        "type": "host-local", "dataDir": scratch.file("ipam"),
                        "ranges": [[["subnet": "\(podSubnetPrefix)0/24"]]], "routes": [["dst": "0.0.0.0/0"]],
                    ],
                ],
                ["type": "portmap", "capabilities": ["portMappings": true]],
                ["type": "bandwidth", "capabilities": ["bandwidth": true]],
            ],
        ]
        let data = try JSONSerialization.data(withJSONObject: conflist, options: [.prettyPrinted, .sortedKeys])
        try scratch.write("net.d/10-\(networkName).conflist", String(decoding: data, as: UTF8.self))
        try connect(host, "up0", to: outside, "eth0")
        try host.mustRun(["ip", "addr", "add", "\(hostAddress)/24", "dev", "up0"])
        try outside.mustRun(["ip", "addr", "add", "\(outsideAddress)/24", "dev", "eth0"])
    }

    /// Starts containerd in the host's namespace and waits until its CRI reports the runtime and
    /// the CNI network ready; imports the sandbox image built by hand (no registry here).
    func start() throws {
        daemon = try DetachedDaemon(
            ["nsenter", "--net=\(host.path)", "containerd", "--config", scratch.file("config.toml")],
            logPath: scratch.file("containerd.log"))
        let ready = try client(["wait-ready", "30"], timeout: 45)
        guard ready.succeeded else {
            throw InteropSetupError("containerd not ready: \(ready.stdout)\n\(containerdLog())")
        }
        try client([
            "image", "--out", scratch.file("pause.tar"), "--name", sandboxImage, "--busybox", staticBusybox ?? "",
            "--cmd", #"["/bin/httpd", "-f", "-p", "80", "-h", "/www"]"#, "--index", "pod-sandbox\n",
        ]).throwUnlessSucceeded("building the sandbox image")
        try runCommand([
            "ctr", "--address", socket, "-n", "k8s.io", "images", "import", "--snapshotter", "native",
            scratch.file("pause.tar"),
        ]).throwUnlessSucceeded("ctr images import")
    }

    func client(_ args: [String], timeout: Double = 120) throws -> CommandResult {
        try runCommand(
            ["/usr/bin/python3", Self.criClient, "--socket", socket, "--work", scratch.file("cri-work")] + args,
            timeout: timeout)
    }

    /// One CRI RuntimeService call; the reply as JSON.
    @discardableResult
    func cri(_ rpc: String, _ request: [String: Any]) throws -> [String: Any] {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
        let result = try client(["call", rpc, body])
        let reply = (try? result.json()) as? [String: Any] ?? [:]
        guard result.succeeded else {
            throw InteropSetupError("CRI \(rpc) failed: \(result.stdout)\(result.stderr)\n\(containerdLog())")
        }
        return reply
    }

    func containerdLog() -> String {
        let text = (try? String(contentsOfFile: scratch.file("containerd.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("level=error") || $0.contains("level=warn") }
            .suffix(15).joined(separator: "\n")
    }

    func exercise() throws {
        let hostPort = 8090
        let reply = try cri(
            "RunPodSandbox",
            [
                "config": [
                    "metadata": ["name": "web", "uid": uniqueTag(), "namespace": "default"],
                    "hostname": "web", "log_directory": scratch.file("logs"),
                    "port_mappings": [["protocol": "TCP", "container_port": 80, "host_port": hostPort]],
                    "annotations": [
                        "kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "10M",
                    ],
                    "linux": [:] as [String: Any],
                ]
            ])
        let id = try #require(reply["pod_sandbox_id"] as? String)
        sandboxes.append(id)

        let status = try cri("PodSandboxStatus", ["pod_sandbox_id": id, "verbose": true])
        let podIP = try #require(
            ((status["status"] as? [String: Any])?["network"] as? [String: Any])?["ip"] as? String,
            "no pod IP: \(status)")
        #expect(podIP.hasPrefix(podSubnetPrefix))
        let info = try #require(
            ((status["info"] as? [String: String])?["info"]).flatMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            })
        let namespaces =
            ((info["runtimeSpec"] as? [String: Any])?["linux"] as? [String: Any])?["namespaces"] as? [[String: Any]]
        let netns = try #require(namespaces?.first { $0["type"] as? String == "network" }?["path"] as? String)
        #expect(netns.hasPrefix(scratch.path), "containerd keeps pod namespaces in its state dir: \(netns)")

        // The pod's namespace: lo up with 127.0.0.1 (the loopback plugin), eth0 with the pod IP.
        let podLinks = try PierTestSupport.mustRun(["nsenter", "--net=\(netns)", "ip", "-j", "addr"]).json()
        let byName = Dictionary(
            ((podLinks as? [[String: Any]]) ?? []).map { ($0["ifname"] as? String ?? "", $0) },
            uniquingKeysWith: { a, _ in a })
        let lo = try #require(byName["lo"])
        #expect((lo["flags"] as? [String] ?? []).contains("UP"))
        #expect("\(lo["addr_info"] ?? "")".contains("127.0.0.1"))
        let eth0 = try #require(byName["eth0"], "pod links: \(byName.keys.sorted())")
        #expect("\(eth0["addr_info"] ?? "")".contains(podIP))
        #expect(Set(byName.keys) == ["lo", "eth0"])

        // The published port from another namespace, and the pod directly from the host.
        #expect(httpGet(from: outside, address: hostAddress, port: hostPort) == "pod-sandbox\n")
        #expect(httpGet(from: host, address: podIP, port: 80) == "pod-sandbox\n")

        // Bandwidth: a token bucket each way (on the host veth and on the IFB for egress).
        let veths = try links(ofType: "veth", in: host)
        #expect(veths.count == 1, "host veths: \(veths)")
        let qdiscs = try host.mustRun(["tc", "-j", "qdisc", "show"]).json() as? [[String: Any]] ?? []
        let shaping = qdiscs.filter { $0["kind"] as? String == "tbf" }
        #expect(shaping.count == 2, "tbf qdiscs: \(qdiscs)")
        for qdisc in shaping {
            let rate = (qdisc["options"] as? [String: Any])?["rate"] as? Int
            #expect(rate == 1_250_000, "10 Mbit/s is 1250000 bytes/s: \(qdisc)")
        }
        #expect(shaping.contains { veths.contains($0["dev"] as? String ?? "") }, "ingress on the veth: \(qdiscs)")
        let ifbs = try links(ofType: "ifb", in: host)
        #expect(shaping.contains { ifbs.contains($0["dev"] as? String ?? "") }, "egress on an IFB: \(qdiscs)")

        // What containerd executed for ADD.
        let adds = calls.calls().filter { $0.command == "ADD" }
        let loopback = try #require(adds.first { $0.plugin == "loopback" }, "no loopback ADD: \(adds)")
        #expect(loopback.cniVersion == "0.3.1" && loopback.ifname == "lo", "\(loopback)")
        let portmap = try #require(adds.first { $0.plugin == "portmap" }, "no portmap ADD: \(adds)")
        // go-cni writes Go field names (HostPort, IngressRate, …): plugins must match keys
        // case-insensitively, as Go's encoding/json does.
        let mappings = portmap.runtimeConfig["portMappings"] as? [[String: Any]] ?? []
        #expect(
            mappings.first?["HostPort"] as? Int == hostPort && mappings.first?["ContainerPort"] as? Int == 80
                && mappings.first?["Protocol"] as? String == "tcp",
            "portmap stdin: \(portmap.stdin)")
        let bandwidth = try #require(adds.first { $0.plugin == "bandwidth" }, "no bandwidth ADD: \(adds)")
        let limits = bandwidth.runtimeConfig["bandwidth"] as? [String: Any] ?? [:]
        // No burst annotation: containerd sends math.MaxUint32 as the burst.
        #expect(
            limits["IngressRate"] as? Int == 10_000_000 && limits["EgressRate"] as? Int == 10_000_000
                && limits["IngressBurst"] as? Int == 4_294_967_295,
            "bandwidth stdin: \(bandwidth.stdin)")
        #expect(adds.allSatisfy { $0.status == "0" }, "\(adds)")

        try cri("StopPodSandbox", ["pod_sandbox_id": id])
        try cri("RemovePodSandbox", ["pod_sandbox_id": id])
        sandboxes.removeAll { $0 == id }

        #expect(try links(ofType: "veth", in: host).isEmpty)
        #expect(try links(ofType: "ifb", in: host).isEmpty)
        let remaining = try host.mustRun(["tc", "-j", "qdisc", "show"]).json() as? [[String: Any]] ?? []
        #expect(
            !remaining.contains { ["tbf", "ingress", "clsact"].contains($0["kind"] as? String ?? "") }, "\(remaining)")
        #expect(leaseFiles(in: leaseDirectory).isEmpty, "leases left: \(leaseFiles(in: leaseDirectory))")
        #expect(!FileManager.default.fileExists(atPath: netns), "pod netns left: \(netns)")
        let ruleset = try nftRuleset(of: host)
        #expect(!mentions(ruleset, address: podIP), "nftables still names \(podIP):\n\(ruleset)")
        #expect(!ruleset.contains(String(id.prefix(12))))

        // containerd DELs twice: at StopPodSandbox with the namespace, at RemovePodSandbox with
        // an empty CNI_NETNS and no prevResult. Both must succeed for every plugin.
        let dels = calls.calls().filter { $0.command == "DEL" }
        #expect(dels.allSatisfy { $0.status == "0" }, "\(dels)")
        for plugin in ["loopback", "bridge", "portmap", "bandwidth"] {
            let mine = dels.filter { $0.plugin == plugin }
            #expect(mine.contains { !$0.netns.isEmpty }, "\(plugin) DELs: \(mine)")
            #expect(mine.contains { $0.netns.isEmpty && !$0.hasPrevResult }, "\(plugin) DELs: \(mine)")
        }
    }

    func tearDown() {
        calls.printIfTracing("containerd")
        for id in sandboxes {
            _ = try? cri("StopPodSandbox", ["pod_sandbox_id": id])
            _ = try? cri("RemovePodSandbox", ["pod_sandbox_id": id])
        }
        daemon?.stop()
        // runc keeps per-container state outside our directories; drop what ours left there.
        for id in sandboxes {
            _ = try? runCommand(["runc", "--root", "/run/containerd/runc/k8s.io", "delete", "--force", id])
        }
        scratch.remove()
        // libcni's result cache, should a sandbox have been left without its DEL.
        let cache = "/var/lib/cni/results"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []
        where entry.hasPrefix(networkName + "-") {
            try? FileManager.default.removeItem(atPath: cache + "/" + entry)
        }
    }
}

extension CommandResult {
    @discardableResult
    func throwUnlessSucceeded(_ what: String) throws -> CommandResult {
        guard succeeded else { throw InteropSetupError("\(what) failed (\(status)): \(stderr)\(stdout)") }
        return self
    }
}
