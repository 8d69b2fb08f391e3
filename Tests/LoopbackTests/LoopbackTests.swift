import Foundation
import PierTestSupport
import Testing

/// The loopback plugin executed as a runtime would: from a "runtime" test host, on a container
/// test host whose lo starts down (the state of a fresh network namespace).
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct LoopbackTests {
    let loopback = PluginRunner("loopback")

    static let versions = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

    private func config(_ version: String, extra: [String: Any] = [:]) -> String {
        NetworkFixture(cniVersion: version, plugin: ["type": "loopback"]).config(extra)
    }

    /// A container whose lo is down, as in a namespace nobody has configured yet.
    private func freshContainer(_ container: TestHost) throws {
        try container.mustRun(["ip", "link", "set", "lo", "down"])
        #expect(try lo(in: container).flags.contains("UP") == false)
    }

    private func lo(in host: TestHost) throws -> (flags: [String], addresses: [String]) {
        let link = try #require(try host.ipJSON(["addr", "show", "dev", "lo"]).first)
        let infos = link["addr_info"] as? [[String: Any]] ?? []
        let addresses = infos.compactMap { info -> String? in
            guard let local = info["local"] as? String, let length = info["prefixlen"] as? Int else { return nil }
            return "\(local)/\(length)"
        }
        return (link["flags"] as? [String] ?? [], addresses)
    }

    @Test(arguments: versions)
    func addBringsLoUpWithTheKernelsAddressesAndPrintsTheResultOfItsVersion(version: String) throws {
        try withTestHosts(2) { hosts in
            let (runtime, container) = (hosts[0], hosts[1])
            try freshContainer(container)
            let output = try loopback.run(
                "ADD", config: config(version), containerID: "lo-\(uniqueTag())", netns: container.path,
                ifname: "lo", in: runtime)
            try #require(output.status == 0, "ADD: \(output.stdout) \(output.stderr)")

            let state = try lo(in: container)
            #expect(state.flags.contains("UP") && state.flags.contains("LOOPBACK"))
            #expect(Set(state.addresses) == ["127.0.0.1/8", "::1/128"])
            #expect(container.canPing("127.0.0.1"))
            #expect(container.canPing("::1"))

            let result = output.object
            #expect(result["cniVersion"] as? String == version)
            if version == "0.1.0" || version == "0.2.0" {
                // The spec's legacy shape, as the reference prints it for a config without a version.
                #expect((result["ip4"] as? [String: Any])?["ip"] as? String == "127.0.0.1/8")
                #expect((result["ip6"] as? [String: Any])?["ip"] as? String == "::1/128")
                #expect(result["interfaces"] == nil && result["ips"] == nil)
            } else {
                let interfaces = try #require(result["interfaces"] as? [[String: Any]])
                #expect(interfaces.count == 1)
                #expect(interfaces.first?["name"] as? String == "lo")
                #expect(interfaces.first?["mac"] as? String == "00:00:00:00:00:00")
                #expect(interfaces.first?["sandbox"] as? String == container.path)
                let ips = try #require(result["ips"] as? [[String: Any]])
                #expect(ips.compactMap { $0["address"] as? String } == ["127.0.0.1/8", "::1/128"])
                #expect(ips.allSatisfy { $0["interface"] as? Int == 0 })
                let versioned = ["0.3.0", "0.3.1", "0.4.0"].contains(version)
                #expect(ips.map { $0["version"] as? String } == (versioned ? ["4", "6"] : [nil, nil]))
            }
        }
    }

    /// containerd passes "lo", other runtimes the name of the network's interface: the plugin
    /// always works on lo and never creates or renames anything.
    @Test func cniIfNameIsIgnored() throws {
        try withTestHosts(2) { hosts in
            let (runtime, container) = (hosts[0], hosts[1])
            try freshContainer(container)
            let output = try loopback.run(
                "ADD", config: config("1.0.0"), containerID: "lo-\(uniqueTag())", netns: container.path,
                ifname: "eth0", in: runtime)
            try #require(output.status == 0, "ADD: \(output.stdout)")
            #expect((output.object["interfaces"] as? [[String: Any]])?.first?["name"] as? String == "lo")
            #expect(try container.linkNames() == ["lo"])
            #expect(try lo(in: container).flags.contains("UP"))
        }
    }

    @Test func aContainerWithoutIPv6GetsOnlyTheIPv4Address() throws {
        try withTestHosts(2) { hosts in
            let (runtime, container) = (hosts[0], hosts[1])
            try freshContainer(container)
            try container.mustRun(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            try container.mustRun(["sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1"])
            let output = try loopback.run(
                "ADD", config: config("1.1.0"), containerID: "lo-\(uniqueTag())", netns: container.path,
                ifname: "lo", in: runtime)
            try #require(output.status == 0, "ADD: \(output.stdout)")
            let ips = output.object["ips"] as? [[String: Any]] ?? []
            #expect(ips.compactMap { $0["address"] as? String } == ["127.0.0.1/8"])
            #expect(try lo(in: container).addresses == ["127.0.0.1/8"])
            #expect(container.canPing("127.0.0.1"))
        }
    }

    @Test func checkNoticesLoDownAndDelSetsItDownAndNeverFailsOnceTheNamespaceIsGone() throws {
        try withTestHosts(2) { hosts in
            let (runtime, container) = (hosts[0], hosts[1])
            try freshContainer(container)
            let id = "lo-\(uniqueTag())"
            let conf = config("1.1.0")
            func run(_ verb: String, netns: String) throws -> PluginOutput {
                try loopback.run(verb, config: conf, containerID: id, netns: netns, ifname: "lo", in: runtime)
            }
            #expect(try run("CHECK", netns: container.path).errorCode == 999)
            try #require(try run("ADD", netns: container.path).status == 0)
            let check = try run("CHECK", netns: container.path)
            #expect(check.status == 0, "CHECK: \(check.stdout)")

            let delete = try run("DEL", netns: container.path)
            #expect(delete.status == 0, "DEL: \(delete.stdout)")
            #expect(try lo(in: container).flags.contains("UP") == false)
            #expect(!container.canPing("127.0.0.1", timeoutSeconds: 1))
            let failed = try run("CHECK", netns: container.path)
            #expect(failed.errorCode == 999)
            #expect((failed.object["msg"] as? String)?.contains("down") == true)
            #expect(try run("DEL", netns: container.path).status == 0)

            let path = container.path
            container.destroy()
            #expect(try run("DEL", netns: path).status == 0)
            #expect(try run("DEL", netns: "").status == 0)
            #expect(try run("ADD", netns: path).errorCode != nil)
        }
    }

    @Test func aChainedLoopbackPassesThePreviousResultOn() throws {
        try withTestHosts(2) { hosts in
            let (runtime, container) = (hosts[0], hosts[1])
            try freshContainer(container)
            let previous: [String: Any] = [
                "cniVersion": "1.1.0",
                "interfaces": [["name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": container.path]],
                "ips": [["address": "10.9.0.2/24", "interface": 0]],
            ]
            let output = try loopback.run(
                "ADD", config: config("1.1.0", extra: ["prevResult": previous]), containerID: "lo-\(uniqueTag())",
                netns: container.path, ifname: "lo", in: runtime)
            try #require(output.status == 0, "ADD: \(output.stdout)")
            #expect(output.object["interfaces"] as? NSArray == previous["interfaces"] as? NSArray)
            #expect(output.object["ips"] as? NSArray == previous["ips"] as? NSArray)
            #expect(try lo(in: container).flags.contains("UP"))
        }
    }

    @Test func gcStatusAndVersionAnswerLikeTheOtherPlugins() throws {
        try withTestHosts(1) { hosts in
            let runtime = hosts[0]
            let conf = config("1.1.0", extra: ["cni.dev/valid-attachments": [] as [Any]])
            #expect(try loopback.run("GC", config: conf, in: runtime).status == 0)
            #expect(try loopback.run("STATUS", config: conf, in: runtime).status == 0)
            let version = try loopback.run("VERSION", config: conf, in: runtime)
            #expect(version.object["supportedVersions"] as? [String] == Self.versions)
        }
    }

    /// The reference plugin (when installed) and Pier's leave the same kernel state and print the
    /// same interfaces and addresses for a version both speak.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/loopback")))
    func sameResultAndStateAsTheReferencePlugin() throws {
        try withTestHosts(3) { hosts in
            let (runtime, ours, theirs) = (hosts[0], hosts[1], hosts[2])
            try freshContainer(ours)
            try freshContainer(theirs)
            var reference = PluginRunner("loopback")
            reference.pluginDirectory = "/usr/lib/cni"
            let conf = config("1.0.0")
            let mine = try loopback.run(
                "ADD", config: conf, containerID: "lo-a", netns: ours.path, ifname: "lo", in: runtime)
            let theirsOutput = try reference.run(
                "ADD", config: conf, containerID: "lo-b", netns: theirs.path, ifname: "lo", in: runtime)
            try #require(mine.status == 0 && theirsOutput.status == 0, "\(mine.stdout) \(theirsOutput.stdout)")
            #expect(mine.object["ips"] as? NSArray == theirsOutput.object["ips"] as? NSArray)
            let strip = { (output: PluginOutput) in
                (output.object["interfaces"] as? [[String: Any]] ?? []).map { $0.filter { $0.key != "sandbox" } }
            }
            #expect(strip(mine) as NSArray == strip(theirsOutput) as NSArray)
            #expect(try lo(in: ours).flags == lo(in: theirs).flags)
            #expect(Set(try lo(in: ours).addresses) == Set(try lo(in: theirs).addresses))
        }
    }
}
