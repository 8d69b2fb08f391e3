import Foundation
import PierTestSupport
import Testing

/// CHECK, GC and leak-freedom over many ADD/DEL cycles.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct BridgeLifecycleTests {
    let helper = BridgeTests()
    let bridgePlugin = PluginRunner("bridge")

    static func jsonObject(_ text: String) -> Any {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) ?? [:]
    }

    /// DEL keeps going past a failing IPAM delegate and reports its code: 11 ("try again
    /// later") stays 11, so the runtime retries instead of giving up on a 999.
    @Test func delReportsTheIPAMDelegatesTryAgainLaterAfterRemovingTheRest() throws {
        let network = BridgeTests.network(subnet4: "10.88.9.0/24", subnet6: "fd88:9::/64")
        defer { network.cleanUp() }
        let scripts = NSTemporaryDirectory() + "pier-t-ipam-\(uniqueTag())"
        try FileManager.default.createDirectory(atPath: scripts, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: scripts) }
        let busyIPAM = scripts + "/ipam-busy"
        try Data(
            """
            #!/bin/sh
            cat > /dev/null
            printf '%s' '{"cniVersion":"1.1.0","code":11,"msg":"lease store busy"}'
            exit 1

            """.utf8
        ).write(to: URL(fileURLWithPath: busyIPAM))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: busyIPAM)
        // The same network whose delegate now answers "try again later".
        let busyNetwork = NetworkFixture(name: network.name, plugin: network.plugin)
        busyNetwork.plugin["ipam"] = ["type": "ipam-busy"]
        defer { busyNetwork.cleanUp() }
        var plugin = bridgePlugin
        plugin.extraEnvironment["CNI_PATH"] = scripts + ":" + builtProductsDirectory

        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            let result = try helper.add(network, c1, on: host)
            let interfaces = try #require(result["interfaces"] as? [[String: Any]])
            let hostVeth = try #require(interfaces[1]["name"] as? String)

            let output = try plugin.run(
                "DEL", config: busyNetwork.config(), containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 11, "\(output.stdout)")
            #expect((output.object["msg"] as? String)?.contains("lease store busy") == true, "\(output.stdout)")
            // Everything but the lease went all the same.
            #expect(try host.link(hostVeth) == nil)
            #expect(try !c1.linkNames().contains("eth0"))
            #expect(network.leases().count == 2)

            // The retry the code asks for (here with the real delegate) finishes the job.
            #expect(try helper.delete(network, c1, id: c1.name, on: host).status == 0)
            #expect(network.leases().isEmpty)
        }
    }

    /// An ADD that fails after the veth and the lease exist (the bridge holds another IPv4
    /// address and `forceAddress` is off) takes both back before it reports the error.
    @Test func failedAddRemovesTheVethAndReleasesTheLease() throws {
        let network = BridgeTests.network(subnet4: "10.88.10.0/24", subnet6: "fd88:10::/64")
        defer { network.cleanUp() }
        let bridge = try #require(network.plugin["bridge"] as? String)
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            try host.mustRun(["ip", "link", "add", bridge, "type", "bridge"])
            try host.mustRun(["ip", "addr", "add", "10.88.10.99/24", "dev", bridge])
            let output = try bridgePlugin.run(
                "ADD", config: network.config(), containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
            #expect(output.status != 0)
            #expect(output.stdout.contains("10.88.10.99"), "\(output.stdout)")
            #expect(try host.linkNames().filter { $0.hasPrefix("veth") }.isEmpty)
            #expect(try !c1.linkNames().contains("eth0"))
            #expect(network.leases().isEmpty)
        }
    }

    @Test func checkPassesAfterAddAndFailsWhenStateIsBroken() throws {
        let network = BridgeTests.network(subnet4: "10.88.1.0/24", subnet6: "fd88:1::/64", ["macspoofchk": true])
        defer { network.cleanUp() }
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            let output = try bridgePlugin.run(
                "ADD", config: network.config(), containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
            try #require(output.status == 0)
            let check = { () throws -> PluginOutput in
                try bridgePlugin.run(
                    "CHECK", config: network.config(["prevResult": Self.jsonObject(output.stdout)]),
                    containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
            }
            let healthy = try check()
            #expect(healthy.status == 0, "\(healthy.stdout)")

            // An address removed behind Pier's back is reported.
            let address = try #require(BridgeTests.containerAddress(output.object, family: "4"))
            try c1.mustRun(["ip", "addr", "del", "\(address)/24", "dev", "eth0"])
            let broken = try check()
            #expect(broken.status != 0)
            #expect(broken.stdout.contains(address))

            // CHECK needs a prevResult.
            let noPrev = try bridgePlugin.run(
                "CHECK", config: network.config(), containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
            #expect(noPrev.status != 0)
            _ = try helper.delete(network, c1, id: c1.name, on: host)
        }
    }

    @Test func gcRemovesWhatNoValidAttachmentOwnsAndThenTheBridge() throws {
        let network = BridgeTests.network(subnet4: "10.88.2.0/24", subnet6: "fd88:2::/64", ["macspoofchk": true])
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, keep, stale) = (hosts[0], hosts[1], hosts[2])
            let kept = try helper.add(network, keep, on: host)
            let lost = try helper.add(network, stale, on: host)
            let keptVeth = try #require(BridgeOptionsTests.hostVeth(kept))
            let lostVeth = try #require(BridgeOptionsTests.hostVeth(lost))
            #expect(network.leases().count == 4)

            let gc = { (valid: [String]) throws -> PluginOutput in
                let attachments = valid.map { ["containerID": $0, "ifname": "eth0"] }
                return try bridgePlugin.run(
                    "GC", config: network.config(["cni.dev/valid-attachments": attachments]), in: host)
            }
            #expect(try gc([keep.name]).status == 0)
            #expect(try host.link(keptVeth) != nil)
            #expect(try host.link(lostVeth) == nil)
            #expect(network.leases().count == 2)
            let bridge = try #require(network.plugin["bridge"] as? String)
            #expect(try host.link(bridge) != nil)

            // Nothing valid: the last veth, its leases, and the unused bridge go, with the
            // network's elements in `inet pier`.
            #expect(try gc([]).status == 0)
            #expect(try host.link(keptVeth) == nil)
            #expect(try host.link(bridge) == nil)
            #expect(network.leases().isEmpty)
            let sets = try host.nftJSON(["list", "table", "inet", "pier"]).compactMap { $0["set"] as? [String: Any] }
            #expect(sets.allSatisfy { ($0["elem"] as? [Any] ?? []).isEmpty }, "\(sets)")
            let spoof = try host.nftJSON(["list", "table", "bridge", "pier"]).compactMap { $0["set"] as? [String: Any] }
            #expect(spoof.allSatisfy { ($0["elem"] as? [Any] ?? []).isEmpty })
        }
    }

    /// 500 ADD/DEL cycles, every fifth with the netns deleted before DEL and every seventh
    /// with an empty CNI_NETNS: nothing may remain.
    @Test func fiveHundredCyclesLeaveNothingBehind() throws {
        let network = BridgeTests.network(
            subnet4: "10.88.3.0/24", subnet6: "fd88:3::/64", ["macspoofchk": true, "hairpinMode": true])
        defer { network.cleanUp() }
        let host = try TestHost()
        defer { host.destroy() }
        for cycle in 0..<500 {
            let container = try TestHost(prefix: "pier-t-c")
            defer { container.destroy() }
            let id = "cycle-\(cycle)-\(uniqueTag(4))"
            let added = try bridgePlugin.run(
                "ADD", config: network.config(), containerID: id, netns: container.path, ifname: "eth0", in: host)
            try #require(added.status == 0, "cycle \(cycle): \(added.stdout)")
            var netns = container.path
            if cycle % 5 == 0 { container.destroy() }
            if cycle % 7 == 0 { netns = "" }
            let deleted = try bridgePlugin.run(
                "DEL", config: network.config(["prevResult": Self.jsonObject(added.stdout)]), containerID: id,
                netns: netns, ifname: "eth0", in: host)
            try #require(deleted.status == 0, "cycle \(cycle): \(deleted.stdout)")
        }
        let bridge = try #require(network.plugin["bridge"] as? String)
        #expect(try host.linkNames().sorted() == [bridge, "lo"].sorted())
        #expect(network.leases().isEmpty)
        let spoof = try host.nftJSON(["list", "table", "bridge", "pier"]).compactMap { $0["set"] as? [String: Any] }
        #expect(spoof.allSatisfy { ($0["elem"] as? [Any] ?? []).isEmpty })
        // The per-network elements stay while the bridge does: one subnet per family, one bridge.
        let sets = try host.nftJSON(["list", "table", "inet", "pier"]).compactMap { $0["set"] as? [String: Any] }
        let counts = Dictionary(
            uniqueKeysWithValues: sets.map { ($0["name"] as? String ?? "", ($0["elem"] as? [Any] ?? []).count) })
        #expect(counts["masq_v4"] == 1 && counts["masq_v6"] == 1 && counts["isolated_bridges"] == 1)
        let files =
            (try? FileManager.default.contentsOfDirectory(atPath: network.dataDirectory + "/" + network.name)) ?? []
        #expect(
            Set(files).isSubset(of: [
                "lock", ".pier-lease-index", ".pier-owners", "last_reserved_ip.0", "last_reserved_ip.1",
                "last_reserved_ip.0.furthest", "last_reserved_ip.1.furthest",
            ]),
            "\(files)")
    }
}

/// Pier's `ipam` runs inside `bridge` only when it is the `ipam` the runtime would exec; an
/// `ipam` earlier on CNI_PATH is exec'd, as the protocol says.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct BridgeIPAMDelegationTests {
    @Test func anotherIPAMEarlierOnTheCNIPathIsExecuted() throws {
        let fakeDirectory = NSTemporaryDirectory() + "pier-t-fake-ipam-\(uniqueTag())"
        try FileManager.default.createDirectory(atPath: fakeDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: fakeDirectory) }
        let script = """
            #!/bin/sh
            echo '{"cniVersion":"1.0.0","code":117,"msg":"fake ipam answered"}'
            exit 1
            """
        let fake = fakeDirectory + "/ipam"
        try Data(script.utf8).write(to: URL(fileURLWithPath: fake))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake)

        let network = BridgeTests.network(subnet4: "10.88.4.0/24", subnet6: "fd88:4::/64")
        defer { network.cleanUp() }
        try withTestHosts(2) { hosts in
            let (host, c1) = (hosts[0], hosts[1])
            var bridge = PluginRunner("bridge")
            bridge.extraEnvironment["CNI_PATH"] = fakeDirectory + ":" + builtProductsDirectory
            let output = try bridge.run(
                "ADD", config: network.config(), containerID: c1.name, netns: c1.path, ifname: "eth0", in: host)
            #expect(output.errorCode == 117, "\(output.stdout)")
            #expect(output.stdout.contains("fake ipam answered"))
            // The failed ADD took its veth with it.
            #expect(try host.linkNames().filter { $0.hasPrefix("veth") }.isEmpty)
        }
    }
}
