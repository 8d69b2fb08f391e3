import Foundation
import PierState
import PierTestSupport
import Testing

@testable import IPAM

/// The built `ipam` binary driven exactly as a runtime drives it: env + stdin, JSON on stdout.
/// IPAM never enters the netns, so these need no root and no test hosts.
@Suite struct PluginEndToEndTests {
    static let runner = PierTestSupport.PluginRunner("ipam")
    /// A netns path that does not exist: the protocol needs one for ADD/CHECK, IPAM never opens it.
    static let netns = "/run/netns/pier-ipam-test-absent"

    static func conf(_ dir: TemporaryDirectory, _ ipam: String, version: String = "1.1.0", extra: String = "") -> String
    {
        #"{"cniVersion":"\#(version)","name":"e2enet","type":"bridge","ipam":{"type":"ipam","dataDir":"\#(dir.path)",\#(ipam)}\#(extra)}"#
    }

    static func run(
        _ verb: String, _ config: String, id: String = "", ifname: String = "eth0", args: String = ""
    ) throws -> PluginOutput {
        let attachment = !["GC", "STATUS"].contains(verb)
        return try runner.run(
            verb, config: config, containerID: attachment ? id : "", netns: attachment && verb != "DEL" ? netns : "",
            ifname: attachment ? ifname : "", args: args)
    }

    static func addresses(_ output: PluginOutput) -> [String] {
        (output.object["ips"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
    }

    static func leaseNames(_ dir: TemporaryDirectory) -> [String] {
        dir.names("e2enet").filter {
            $0 != "lock" && $0 != LeaseIndex.fileName && $0 != LeaseOwnerLinks.directoryName
                && !$0.hasPrefix("last_reserved_ip.")
        }
    }

    let dualStack = #""ranges":[[{"subnet":"10.44.0.0/29"}],[{"subnet":"fd44::/120"}]],"routes":[{"dst":"0.0.0.0/0"}]"#

    @Test func addCheckGCStatusDel() throws {
        let dir = try TemporaryDirectory()
        let config = Self.conf(dir, dualStack)
        let add = try Self.run("ADD", config, id: "c1")
        #expect(add.status == 0, "\(add.stdout) \(add.stderr)")
        #expect(add.object["cniVersion"] as? String == "1.1.0")
        #expect(Self.addresses(add) == ["10.44.0.2/29", "fd44::2/120"])
        #expect((add.object["ips"] as? [[String: Any]])?.first?["gateway"] as? String == "10.44.0.1")
        #expect((add.object["routes"] as? [[String: Any]])?.first?["dst"] as? String == "0.0.0.0/0")
        #expect(add.object["interfaces"] == nil)
        #expect(dir.bytes("e2enet/10.44.0.2") == Array("c1\r\neth0".utf8))

        #expect(try Self.run("CHECK", config, id: "c1").status == 0)
        let missing = try Self.run("CHECK", config, id: "c2")
        #expect(missing.errorCode == 999)
        #expect(try Self.run("STATUS", config).status == 0)

        #expect(Self.addresses(try Self.run("ADD", config, id: "c2")) == ["10.44.0.3/29", "fd44::3/120"])
        let gcConfig = Self.conf(
            dir, dualStack, extra: #","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]"#)
        let gc = try Self.run("GC", gcConfig)
        #expect(gc.status == 0, "\(gc.stdout)")
        #expect(gc.stdout.isEmpty)
        #expect(Self.leaseNames(dir) == ["10.44.0.2", "fd44::2"])

        let del = try Self.run("DEL", config, id: "c1")
        #expect(del.status == 0)
        #expect(del.stdout.isEmpty)
        #expect(Self.leaseNames(dir).isEmpty)
        #expect(try Self.run("DEL", config, id: "c1").status == 0, "DEL must be idempotent")
        #expect(try Self.run("DEL", config, id: "never-added").status == 0)
    }

    @Test func gcWithTheOldKeyAndWithAnEmptyList() throws {
        let dir = try TemporaryDirectory()
        let config = Self.conf(dir, dualStack)
        _ = try Self.run("ADD", config, id: "a")
        _ = try Self.run("ADD", config, id: "b")
        let old = Self.conf(dir, dualStack, extra: #","cni.dev/attachments":[{"containerID":"b","ifname":"eth0"}]"#)
        #expect(try Self.run("GC", old).status == 0)
        #expect(Self.leaseNames(dir) == ["10.44.0.3", "fd44::3"])
        #expect(try Self.run("GC", Self.conf(dir, dualStack, extra: #","cni.dev/valid-attachments":[]"#)).status == 0)
        #expect(Self.leaseNames(dir).isEmpty)
    }

    @Test func resultFollowsTheRequestedVersion() throws {
        let dir = try TemporaryDirectory()
        let v031 = try Self.run("ADD", Self.conf(dir, dualStack, version: "0.3.1"), id: "v031")
        #expect((v031.object["ips"] as? [[String: Any]])?.first?["version"] as? String == "4")
        let v020 = try Self.run("ADD", Self.conf(dir, dualStack, version: "0.2.0"), id: "v020")
        #expect((v020.object["ip4"] as? [String: Any])?["ip"] as? String == "10.44.0.3/29")
        #expect((v020.object["ip6"] as? [String: Any])?["ip"] as? String == "fd44::3/120")
    }

    @Test func requestedAddressesFromArgsAndCapabilities() throws {
        let dir = try TemporaryDirectory()
        let config = Self.conf(dir, dualStack, extra: #","runtimeConfig":{"ips":["fd44::9"]}"#)
        let add = try Self.run("ADD", config, id: "r1", args: "IgnoreUnknown=1;IP=10.44.0.5")
        #expect(Self.addresses(add) == ["10.44.0.5/29", "fd44::9/120"], "\(add.stdout)")
        let taken = try Self.run("ADD", config, id: "r2")
        #expect(taken.errorCode == 999)
        #expect((taken.object["msg"] as? String)?.contains("fd44::9") == true)
        #expect(Self.leaseNames(dir) == ["10.44.0.5", "fd44::9"])
    }

    @Test func exhaustionIsCode11() throws {
        let dir = try TemporaryDirectory()
        let config = Self.conf(dir, #""ranges":[[{"subnet":"10.45.0.0/30"}]]"#)
        #expect(Self.addresses(try Self.run("ADD", config, id: "x1")) == ["10.45.0.2/30"])
        let full = try Self.run("ADD", config, id: "x2")
        #expect(full.errorCode == 11)
        #expect(
            (full.object["msg"] as? String)?.contains("no IP addresses available in range set: 10.45.0.1-10.45.0.2")
                == true)
        let status = try Self.run("STATUS", config)
        #expect(status.errorCode == 50)
    }

    @Test func staticMode() throws {
        let dir = try TemporaryDirectory()
        let config = Self.conf(dir, #""addresses":[{"address":"10.46.0.9/24","gateway":"10.46.0.1"}]"#)
        let add = try Self.run("ADD", config, id: "s1", args: "GATEWAY=10.46.0.254")
        #expect(Self.addresses(add) == ["10.46.0.9/24"])
        #expect((add.object["ips"] as? [[String: Any]])?.first?["gateway"] as? String == "10.46.0.254")
        #expect(try Self.run("DEL", config, id: "s1").status == 0)
        let prev = Self.conf(
            dir, #""addresses":[{"address":"10.46.0.9/24"}]"#,
            extra: #","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.46.0.9/24"}]}"#)
        #expect(try Self.run("CHECK", prev, id: "s1").status == 0)
        #expect(dir.names("").isEmpty, "static mode writes nothing")
    }

    /// Bad input gets the right code and never creates anything under dataDir.
    @Test(arguments: [
        ("ADD", "../../etc", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "", 4),
        ("DEL", "../../etc", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "", 4),
        ("ADD", "", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "", 4),
        ("ADD", "c1", "../x", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "", 4),
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/33"}]]"#, "", 7),
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.7/24"}]]"#, "", 7),
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}],[{"subnet":"10.47.0.0/25"}]]"#, "", 7),
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24","gateway":"10.48.0.1"}]]"#, "", 7),
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "IP=10.99.0.1", 999),
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "IP", 4),
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":42}]]"#, "", 7),
        // An empty CNI_ARGS key names nothing, even with IgnoreUnknown.
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "=", 4),
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "IgnoreUnknown=1;=v", 4),
        ("DEL", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "=;=;=", 4),
        // A repeated key means different things to different decoders.
        ("ADD", "c1", "eth0", #""ranges":[[{"subnet":"10.47.0.0/24","subnet":"10.48.0.0/24"}]]"#, "", 7),
        ("ADD", "c1", "eth0", #""ranges":null,"ranges":[[{"subnet":"10.47.0.0/24"}]]"#, "", 7),
    ])
    func badInputTouchesNothing(
        verb: String, id: String, ifname: String, ipam: String, args: String, code: Int
    ) throws {
        let dir = try TemporaryDirectory()
        let output = try Self.run(verb, Self.conf(dir, ipam), id: id, ifname: ifname, args: args)
        #expect(output.status != 0)
        #expect(output.errorCode == code || (id.isEmpty && output.errorCode == 3), "\(output.stdout)")
        #expect(dir.names("").isEmpty, "created \(dir.names(""))")
        #expect(!FileManager.default.fileExists(atPath: "/etc/e2enet"))
    }

    @Test func badNetworkNameIsCode7() throws {
        let dir = try TemporaryDirectory()
        let config =
            #"{"cniVersion":"1.1.0","name":"../evil","ipam":{"type":"ipam","dataDir":"\#(dir.path)","ranges":[[{"subnet":"10.47.0.0/24"}]]}}"#
        #expect(
            try Self.runner.run("ADD", config: config, containerID: "c1", netns: Self.netns, ifname: "eth0").errorCode
                == 7)
        #expect(dir.names("").isEmpty)
    }

    /// Two hosts sharing one file store through the plugin: unique addresses, and each host's
    /// DEL and GC only touch its own leases.
    @Test func clusterModeAcrossTwoHosts() throws {
        let dir = try TemporaryDirectory()
        func hostConf(_ host: String, extra: String = "") -> String {
            Self.conf(
                dir,
                #""ranges":[[{"subnet":"10.52.0.0/29"}]],"store":{"type":"file","path":"\#(dir.path)/store","host":"\#(host)"}"#,
                extra: extra)
        }
        #expect(Self.addresses(try Self.run("ADD", hostConf("node-a"), id: "c1")) == ["10.52.0.2/29"])
        #expect(Self.addresses(try Self.run("ADD", hostConf("node-b"), id: "c1")) == ["10.52.0.3/29"])
        #expect(try Self.run("CHECK", hostConf("node-b"), id: "c1").status == 0)
        #expect(try Self.run("GC", hostConf("node-a", extra: #","cni.dev/valid-attachments":[]"#)).status == 0)
        #expect(try Self.run("CHECK", hostConf("node-a"), id: "c1").errorCode == 999)
        #expect(try Self.run("CHECK", hostConf("node-b"), id: "c1").status == 0)
        #expect(try Self.run("DEL", hostConf("node-b"), id: "c1").status == 0)
        #expect(try Self.run("CHECK", hostConf("node-b"), id: "c1").errorCode == 999)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/e2enet"), "cluster mode keeps no lease directory")
        let bad = try Self.run(
            "ADD",
            Self.conf(
                dir, #""ranges":[[{"subnet":"10.52.0.0/29"}]],"store":{"type":"etcd","endpoints":["ftp://x"]}"#),
            id: "c2")
        #expect(bad.errorCode == 7)
        // An etcd nobody listens on is transient: "try again later".
        let port = try freeLoopbackPort()
        let down = try Self.run(
            "ADD",
            Self.conf(
                dir,
                #""ranges":[[{"subnet":"10.52.0.0/29"}]],"store":{"type":"etcd","endpoints":["http://127.0.0.1:\#(port)"]}"#
            ), id: "c2")
        #expect(down.errorCode == 11)
    }

    @Test func interoperatesWithHostLocalThroughThePlugin() throws {
        let dir = try TemporaryDirectory()
        let body = #""ranges":[[{"subnet":"10.49.0.0/29"}]]"#
        let goConf =
            #"{"cniVersion":"1.0.0","name":"e2enet","type":"host-local","ipam":{"type":"host-local","dataDir":"\#(dir.path)",\#(body)}}"#
        let goEnv = [
            "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "go1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
            "CNI_PATH": "/usr/lib/cni",
        ]
        #expect(try runCommand(["/usr/lib/cni/host-local"], stdin: goConf, environment: goEnv).succeeded)
        let ours = try Self.run("ADD", Self.conf(dir, body, version: "1.0.0"), id: "swift1")
        #expect(Self.addresses(ours) == ["10.49.0.3/29"])
        #expect(try Self.run("DEL", Self.conf(dir, body), id: "go1").status == 0)
        #expect(Self.leaseNames(dir) == ["10.49.0.3"])
    }
}
