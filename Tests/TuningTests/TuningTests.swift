import Foundation
import PierTestSupport
import Testing

/// The tuning plugin executed as a runtime executes a chained plugin, on a container test host;
/// the kernel is read back with `ip -j -d link` and /proc/sys from inside the container.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct TuningTests {
    static var everyKey: [String: Any] {
        [
            "sysctl": [
                "net.core.somaxconn": "777",
                "net.ipv4.conf.IFNAME.arp_filter": "1",
                "net/ipv4/conf/eth0/rp_filter": "2",
                "net.ipv4.tcp_rmem": "4096 65536 1048576",
            ],
            "mac": "c2:b0:57:49:47:f1",
            "mtu": 1400,
            "promisc": true,
            "allmulti": true,
            "txQLen": 321,
        ]
    }

    @Test func everyKeyIsAppliedPassedOnCheckedAndRestoredByDel() throws {
        try withTuningWorld { world in
            let before = try world.linkState()
            let sysctls = [
                "net/core/somaxconn", "net/ipv4/conf/eth0/arp_filter", "net/ipv4/conf/eth0/rp_filter",
                "net/ipv4/tcp_rmem",
            ]
            let originalSysctls = try sysctls.map(world.sysctl)
            let previous = world.previousResult
            let config = world.config(Self.everyKey, previous: previous)

            let output = try world.run("ADD", config)
            try #require(output.status == 0, "ADD: \(output.stdout)")
            #expect(
                try world.linkState()
                    == LinkState(
                        mac: "c2:b0:57:49:47:f1", mtu: 1400, txqlen: 321, promiscuous: true, allMulticast: true))
            #expect(try world.sysctl("net/core/somaxconn") == "777")
            #expect(try world.sysctl("net/ipv4/conf/eth0/arp_filter") == "1")
            #expect(try world.sysctl("net/ipv4/conf/eth0/rp_filter") == "2")
            #expect(
                try world.sysctl("net/ipv4/tcp_rmem").split(whereSeparator: \.isWhitespace) == [
                    "4096", "65536", "1048576",
                ])

            // The result is prevResult with the container interface's new MAC, nothing else changed.
            let interfaces = try #require(output.object["interfaces"] as? [[String: Any]])
            #expect(interfaces.map { $0["mac"] as? String } == ["02:00:00:00:00:99", "c2:b0:57:49:47:f1"])
            #expect(interfaces.map { $0["name"] as? String } == ["vethabcd", "eth0"])
            #expect(output.object["ips"] as? NSArray == previous["ips"] as? NSArray)

            // The originals are saved for DEL, readable by root only.
            let attributes = try FileManager.default.attributesOfItem(atPath: world.savedFile)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)

            let check = try world.run("CHECK", world.config(Self.everyKey, previous: output.object))
            #expect(check.status == 0, "CHECK: \(check.stdout)")
            try world.container.mustRun(["ip", "link", "set", "eth0", "mtu", "1500"])
            let failed = try world.run("CHECK", world.config(Self.everyKey, previous: output.object))
            #expect(failed.errorCode == 999)
            #expect((failed.object["msg"] as? String)?.contains("MTU") == true)
            try world.container.mustRun(["ip", "link", "set", "eth0", "mtu", "1400"])

            let delete = try world.run("DEL", config)
            #expect(delete.status == 0, "DEL: \(delete.stdout)")
            #expect(try world.linkState() == before)
            #expect(try sysctls.map(world.sysctl) == originalSysctls)
            #expect(!world.savedFileExists)
            #expect(try world.run("DEL", config).status == 0)
            #expect(try world.linkState() == before)
            // The restored sysctls are no longer what the config asks: CHECK says so.
            let stale = try world.run("CHECK", world.config(Self.everyKey, previous: output.object))
            #expect(stale.errorCode == 999)
            #expect((stale.object["msg"] as? String)?.contains("sysctl net.core.somaxconn") == true)
        }
    }

    /// The reference's allowlist, `/etc/cni/tuning/allowlist.conf`, replaced for the plugin
    /// only: it runs in the runtime host's private mount namespace with a directory of the
    /// test's bind-mounted over /etc/cni.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/etc/cni")))
    func theHostsAllowlistLimitsWhichSysctlsCanBeSet() throws {
        try withTuningWorld { world in
            let etc = NSTemporaryDirectory() + "pier-t-etc-cni-\(uniqueTag())"
            defer { try? FileManager.default.removeItem(atPath: etc) }
            try FileManager.default.createDirectory(atPath: etc + "/tuning", withIntermediateDirectories: true)
            try "^net\\.core\\.somaxconn$\n\n  net\\.ipv4\\.conf\\.IFNAME\\.  \n".write(
                toFile: etc + "/tuning/allowlist.conf", atomically: true, encoding: .utf8)
            func add(_ sysctls: [String: String]) throws -> (status: Int32, stdout: String, object: [String: Any]) {
                let environment = [
                    "CNI_COMMAND=ADD", "CNI_CONTAINERID=\(world.containerID)", "CNI_NETNS=\(world.container.path)",
                    "CNI_IFNAME=eth0", "CNI_PATH=\(builtProductsDirectory)",
                ]
                let result = try world.runtime.run(
                    ["sh", "-c", "mount --bind \"$0\" /etc/cni && exec \"$@\"", etc, "/usr/bin/env"] + environment
                        + [builtProductsDirectory + "/tuning"],
                    stdin: world.config(["sysctl": sysctls]))
                let object = (try? result.json()) as? [String: Any] ?? [:]
                return (result.status, result.stdout + result.stderr, object)
            }
            let somaxconn = try world.sysctl("net/core/somaxconn")
            let forwarding = try world.sysctl("net/ipv4/ip_forward")
            let refused = try add(["net.core.somaxconn": "555", "net.ipv4.ip_forward": "1"])
            #expect(refused.status == 1 && refused.object["code"] as? Int == 7, "\(refused.stdout)")
            #expect((refused.object["msg"] as? String)?.contains("net.ipv4.ip_forward") == true)
            #expect(try world.sysctl("net/core/somaxconn") == somaxconn)
            #expect(try world.sysctl("net/ipv4/ip_forward") == forwarding)

            let allowed = try add(["net.core.somaxconn": "556", "net.ipv4.conf.IFNAME.arp_filter": "1"])
            #expect(allowed.status == 0, "\(allowed.stdout)")
            #expect(try world.sysctl("net/core/somaxconn") == "556")
            #expect(try world.sysctl("net/ipv4/conf/eth0/arp_filter") == "1")
            #expect(try world.run("DEL", world.config([:])).status == 0)
            #expect(try world.sysctl("net/core/somaxconn") == somaxconn)
        }
    }

    /// The kernel refusing a value halfway (an MTU above the veth's 65535, after the sysctls and
    /// the MAC were set) undoes what was already done.
    @Test func aKernelRefusalMidwayRollsBackWhatWasAlreadyChanged() throws {
        try withTuningWorld { world in
            let before = try world.linkState()
            let somaxconn = try world.sysctl("net/core/somaxconn")
            let keys: [String: Any] = [
                "sysctl": ["net.core.somaxconn": "888"], "mac": "c2:b0:57:49:47:f2", "promisc": true, "mtu": 65536,
            ]
            let output = try world.run("ADD", world.config(keys))
            #expect(output.errorCode == 7, "\(output.stdout)")
            #expect((output.object["msg"] as? String)?.contains("MTU 65536") == true)
            #expect(try world.linkState() == before)
            #expect(try world.sysctl("net/core/somaxconn") == somaxconn)
            #expect(!world.savedFileExists)

            // A value the kernel refuses for a sysctl, after another sysctl was written.
            let sysctlRefused = try world.run(
                "ADD", world.config(["sysctl": ["net.core.somaxconn": "889", "net.ipv4.conf.IFNAME.arp_filter": "x"]]))
            #expect(sysctlRefused.errorCode == 7, "\(sysctlRefused.stdout)")
            #expect(try world.sysctl("net/core/somaxconn") == somaxconn)
            #expect(!world.savedFileExists)

            // A key naming no sysctl is refused while reading, before any write.
            let unknown = try world.run("ADD", world.config(["sysctl": ["net.core.no_such_thing": "1"]]))
            #expect(unknown.errorCode == 7, "\(unknown.stdout)")
        }
    }

    /// The reference's order: `mac` < CNI_ARGS `MAC` < runtimeConfig `mac` < `args.cni.mac`.
    @Test func macSourcesAndTheirPrecedence() throws {
        try withTuningWorld { world in
            let original = try world.mac()
            var output = try world.run("ADD", world.config(["mac": "c2:00:00:00:00:01"]), args: "MAC=c2:00:00:00:00:02")
            try #require(output.status == 0, "\(output.stdout)")
            #expect(try world.mac() == "c2:00:00:00:00:02")
            #expect((output.object["interfaces"] as? [[String: Any]])?.last?["mac"] as? String == "c2:00:00:00:00:02")

            output = try world.run(
                "ADD", world.config(["mac": "c2:00:00:00:00:01", "runtimeConfig": ["mac": "c2:00:00:00:00:03"]]),
                args: "IgnoreUnknown=1;MAC=c2:00:00:00:00:02")
            try #require(output.status == 0, "\(output.stdout)")
            #expect(try world.mac() == "c2:00:00:00:00:03")

            output = try world.run(
                "ADD",
                world.config([
                    "runtimeConfig": ["mac": "c2:00:00:00:00:03"], "args": ["cni": ["mac": "c2:00:00:00:00:04"]],
                ]))
            try #require(output.status == 0, "\(output.stdout)")
            #expect(try world.mac() == "c2:00:00:00:00:04")

            // Three ADDs without DEL: the saved original is still the veth's own MAC.
            let savedText = try String(contentsOfFile: world.savedFile, encoding: .utf8)
            #expect(savedText.contains("\"mac\":\"\(original)\""))
            #expect(try world.run("DEL", world.config([:])).status == 0)
            #expect(try world.mac() == original)
            #expect(!world.savedFileExists)
        }
    }

    @Test func nothingConfiguredTouchesNothingAndPassesThePreviousResultOn() throws {
        try withTuningWorld { world in
            let previous = world.previousResult
            let output = try world.run("ADD", world.config([:], previous: previous))
            try #require(output.status == 0, "\(output.stdout)")
            #expect(output.object["interfaces"] as? NSArray == previous["interfaces"] as? NSArray)
            #expect(!FileManager.default.fileExists(atPath: world.dataDirectory))
            #expect(try world.run("CHECK", world.config([:])).status == 0)
            #expect(try world.run("DEL", world.config([:])).status == 0)
        }
    }

    /// Every spec version: the previous result goes back out in the config's version.
    @Test(arguments: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    func thePreviousResultIsPrintedInTheConfigsVersion(version: String) throws {
        try withTuningWorld { world in
            let legacy = version == "0.1.0" || version == "0.2.0"
            let previous: [String: Any] =
                legacy
                ? ["cniVersion": version, "ip4": ["ip": "10.77.0.2/24", "gateway": "10.77.0.1"]]
                : world.previousResult.merging(["cniVersion": version]) { _, new in new }
            let output = try world.run("ADD", world.config(["mtu": 1450], version: version, previous: previous))
            try #require(output.status == 0, "\(version): \(output.stdout)")
            #expect(output.object["cniVersion"] as? String == version)
            if legacy {
                #expect((output.object["ip4"] as? [String: Any])?["ip"] as? String == "10.77.0.2/24")
            } else {
                #expect((output.object["ips"] as? [[String: Any]])?.first?["address"] as? String == "10.77.0.2/24")
            }
            #expect(try world.linkState().mtu == 1450)
            #expect(try world.run("DEL", world.config([:], version: version, previous: previous)).status == 0)
            #expect(try world.linkState().mtu == 1500)
        }
    }

    @Test func delWithTheNamespaceGoneOrNotGivenSucceedsAndForgetsTheSavedSettings() throws {
        try withTuningWorld { world in
            try #require(try world.run("ADD", world.config(["mtu": 1300])).status == 0)
            #expect(world.savedFileExists)
            let path = world.container.path
            world.container.destroy()
            #expect(try world.run("DEL", world.config([:]), netns: path).status == 0)
            #expect(!world.savedFileExists)
            #expect(try world.run("DEL", world.config([:]), netns: path).status == 0)
        }
        try withTuningWorld { world in
            try #require(try world.run("ADD", world.config(["promisc": true])).status == 0)
            let delete = try world.tuning.run(
                "DEL", config: world.config([:]), containerID: world.containerID, ifname: "eth0", in: world.runtime)
            #expect(delete.status == 0, "\(delete.stdout)")
            #expect(!world.savedFileExists)
        }
    }

    /// DEL after the interface plugin already removed the interface (a runtime deleting out of
    /// order, or a retried DEL): nothing to restore, the sysctls of the namespace still are.
    @Test func delWithTheInterfaceGoneRestoresTheRest() throws {
        try withTuningWorld { world in
            let somaxconn = try world.sysctl("net/core/somaxconn")
            let keys: [String: Any] = [
                "sysctl": ["net.core.somaxconn": "999", "net.ipv4.conf.IFNAME.arp_filter": "1"], "mtu": 1300,
            ]
            try #require(try world.run("ADD", world.config(keys)).status == 0)
            try world.container.mustRun(["ip", "link", "del", "eth0"])
            let delete = try world.run("DEL", world.config(keys))
            #expect(delete.status == 0, "\(delete.stdout)")
            #expect(try world.sysctl("net/core/somaxconn") == somaxconn)
            #expect(!world.savedFileExists)
        }
    }

    @Test func gcForgetsOnlyThisNetworksAttachmentsThatAreNoLongerValid() throws {
        try withTuningWorld { world in
            try #require(try world.run("ADD", world.config(["promisc": true])).status == 0)
            // Another attachment of the same network, and a file of another network.
            let directory = world.dataDirectory
            let stale = "{\"mtu\":1500,\"network\":\"\(world.network)\",\"containerID\":\"gone\",\"ifName\":\"eth0\"}"
            let foreign = "{\"mtu\":1500,\"network\":\"other\",\"containerID\":\"gone2\",\"ifName\":\"eth0\"}"
            try stale.write(toFile: directory + "/gone_eth0.json", atomically: true, encoding: .utf8)
            try foreign.write(toFile: directory + "/gone2_eth0.json", atomically: true, encoding: .utf8)
            let valid: [[String: Any]] = [["containerID": world.containerID, "ifname": "eth0"]]
            let gc = try world.tuning.run(
                "GC", config: world.config(["cni.dev/valid-attachments": valid]), in: world.runtime)
            #expect(gc.status == 0, "\(gc.stdout)")
            #expect(world.savedFileExists)
            #expect(!FileManager.default.fileExists(atPath: directory + "/gone_eth0.json"))
            #expect(FileManager.default.fileExists(atPath: directory + "/gone2_eth0.json"))
            #expect(try world.tuning.run("STATUS", config: world.config([:]), in: world.runtime).status == 0)
        }
    }

    /// `bridge` then `tuning`, each given the previous plugin's result as libcni does, then
    /// DEL in reverse order; the container still reaches its gateway with the new MAC.
    @Test func chainedAfterBridgeLikeARuntime() throws {
        try withTestHosts(2) { hosts in
            let (runtime, container) = (hosts[0], hosts[1])
            let bridge = NetworkFixture(plugin: [
                "type": "bridge", "bridge": "tn-\(uniqueTag(6))", "isGateway": true,
                "ipam": ["type": "ipam", "ranges": [[["subnet": "10.78.0.0/24"]]]],
            ])
            defer { bridge.cleanUp() }
            let dataDirectory = NSTemporaryDirectory() + "pier-t-tuning-\(uniqueTag())"
            defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
            let tuningPlugin: [String: Any] = [
                "type": "tuning", "mac": "c2:b0:57:49:47:0a", "mtu": 1400, "dataDir": dataDirectory,
                "sysctl": ["net.ipv4.conf.IFNAME.arp_ignore": "1"],
            ]
            let tuning = NetworkFixture(name: bridge.name, plugin: tuningPlugin)
            let id = "tun-\(uniqueTag())"
            let bridgeRunner = PluginRunner("bridge")
            let tuningRunner = PluginRunner("tuning")
            let added = try bridgeRunner.run(
                "ADD", config: bridge.config(), containerID: id, netns: container.path, ifname: "eth0", in: runtime)
            try #require(added.status == 0, "bridge ADD: \(added.stdout)")
            defer {
                _ = try? bridgeRunner.run(
                    "DEL", config: bridge.config(["prevResult": added.object]), containerID: id,
                    netns: container.path, ifname: "eth0", in: runtime)
            }
            let tuned = try tuningRunner.run(
                "ADD", config: tuning.config(["prevResult": added.object]), containerID: id, netns: container.path,
                ifname: "eth0", in: runtime)
            try #require(tuned.status == 0, "tuning ADD: \(tuned.stdout)")

            let before = added.object["interfaces"] as? [[String: Any]] ?? []
            let after = tuned.object["interfaces"] as? [[String: Any]] ?? []
            #expect(after.count == before.count)
            for (old, new) in zip(before, after) {
                let isContainer = new["sandbox"] as? String == container.path
                #expect(new["name"] as? String == old["name"] as? String)
                #expect(new["mac"] as? String == (isContainer ? "c2:b0:57:49:47:0a" : old["mac"] as? String))
            }
            #expect(tuned.object["ips"] as? NSArray == added.object["ips"] as? NSArray)
            let link = try #require(try container.link("eth0"))
            #expect(link["address"] as? String == "c2:b0:57:49:47:0a")
            #expect(link["mtu"] as? Int == 1400)
            #expect(
                try container.mustRun(["cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"]).stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines) == "1")
            #expect(container.canPing("10.78.0.1"))

            let check = try tuningRunner.run(
                "CHECK", config: tuning.config(["prevResult": tuned.object]), containerID: id,
                netns: container.path, ifname: "eth0", in: runtime)
            #expect(check.status == 0, "tuning CHECK: \(check.stdout)")
            let original = before.first { $0["sandbox"] as? String == container.path }?["mac"] as? String
            let delete = try tuningRunner.run(
                "DEL", config: tuning.config(["prevResult": tuned.object]), containerID: id, netns: container.path,
                ifname: "eth0", in: runtime)
            #expect(delete.status == 0, "tuning DEL: \(delete.stdout)")
            #expect(try container.link("eth0")?["address"] as? String == original)
            #expect(try container.link("eth0")?["mtu"] as? Int == 1500)
        }
    }

    /// Settings saved by the reference plugin (its file, its keys) are restored by Pier's DEL.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/tuning")))
    func restoresWhatTheReferencePluginSaved() throws {
        try withTuningWorld { world in
            let before = try world.linkState()
            var reference = PluginRunner("tuning")
            reference.pluginDirectory = "/usr/lib/cni"
            let keys: [String: Any] = ["mac": "c2:b0:57:49:47:0b", "mtu": 1300, "promisc": true, "allmulti": true]
            let previous = world.previousResult.merging(["cniVersion": "1.0.0"]) { _, new in new }
            let theirs = try reference.run(
                "ADD", config: world.config(keys, version: "1.0.0", previous: previous),
                containerID: world.containerID, netns: world.container.path, ifname: "eth0", in: world.runtime)
            try #require(theirs.status == 0, "reference ADD: \(theirs.stdout)")
            #expect(world.savedFileExists)
            // Both print the same result for the same request.
            let ours = try world.tuning.run(
                "ADD", config: world.config(keys, version: "1.0.0", previous: previous),
                containerID: "other-\(uniqueTag())", netns: world.container.path, ifname: "eth0", in: world.runtime)
            try #require(ours.status == 0, "ADD: \(ours.stdout)")
            #expect(ours.object["interfaces"] as? NSArray == theirs.object["interfaces"] as? NSArray)
            #expect(ours.object["ips"] as? NSArray == theirs.object["ips"] as? NSArray)

            let delete = try world.run("DEL", world.config(keys, version: "1.0.0", previous: previous))
            #expect(delete.status == 0, "DEL: \(delete.stdout)")
            #expect(try world.linkState() == before)
            #expect(!world.savedFileExists)
        }
    }
}
