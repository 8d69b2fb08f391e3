import Foundation
import PierTestSupport
import Testing

/// The macvlan plugin, executed as a runtime would: inside a test host (the "host" netns) whose
/// master is one end of a veth; the other end sits in a second test host on the same segment
/// (this kernel has no dummy driver). Containers are further test hosts; Pier's `ipam` is the
/// delegate. Subnets 10.201.x.0/24, one per test.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct MacvlanTests {
    let macvlan = PluginRunner("macvlan")

    /// A macvlan network on `master` with addresses from `subnet` (.10–.100; the peer is .254).
    static func network(master: String? = "mst0", subnet: String?, _ extra: [String: Any] = [:]) -> NetworkFixture {
        var plugin: [String: Any] = ["type": "macvlan"]
        if let master { plugin["master"] = master }
        if let subnet {
            let base = subnet.split(separator: "/")[0].split(separator: ".").prefix(3).joined(separator: ".")
            plugin["ipam"] = [
                "type": "ipam",
                "ranges": [[["subnet": subnet, "rangeStart": "\(base).10", "rangeEnd": "\(base).100"]]],
            ]
        }
        for (key, value) in extra { plugin[key] = value }
        return NetworkFixture(plugin: plugin)
    }

    /// Joins `host` (interface `master`) and `peer` (interface `up0`, address `.254` of the
    /// subnet) with a veth: the segment the master is plugged into.
    static func segment(_ host: TestHost, master: String = "mst0", peer: TestHost, subnet: String) throws {
        try connect(host, master, to: peer, "up0")
        try peer.mustRun(["ip", "addr", "add", peerAddress(subnet) + "/24", "dev", "up0"])
    }

    static func peerAddress(_ subnet: String) -> String {
        subnet.split(separator: "/")[0].split(separator: ".").prefix(3).joined(separator: ".") + ".254"
    }

    func run(
        _ command: String, _ network: NetworkFixture, _ container: TestHost?, on host: TestHost,
        id: String? = nil, ifname: String = "eth0", args: String = "", extra: [String: Any] = [:]
    ) throws -> PluginOutput {
        try macvlan.run(
            command, config: network.config(extra), containerID: id ?? container?.name ?? "gone",
            netns: container?.path ?? "", ifname: ifname, args: args, in: host)
    }

    func add(_ network: NetworkFixture, _ container: TestHost, on host: TestHost, args: String = "") throws
        -> [String: Any]
    {
        let output = try run("ADD", network, container, on: host, args: args)
        try #require(output.status == 0, "ADD failed: \(output.stdout) \(output.stderr)")
        return output.object
    }

    static func address(_ result: [String: Any], family: String = "4") -> String? {
        let ips = result["ips"] as? [[String: Any]] ?? []
        let addresses = ips.compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
        return addresses.first { family == "6" ? $0.contains(":") : !$0.contains(":") }
    }

    static func macvlanMode(_ link: [String: Any]?) -> String? {
        let info = link?["linkinfo"] as? [String: Any]
        guard info?["info_kind"] as? String == "macvlan" else { return nil }
        return (info?["info_data"] as? [String: Any])?["mode"] as? String
    }

    @Test func bridgeModeContainersOnOneMasterReachEachOther() throws {
        let subnet = "10.201.1.0/24"
        let network = Self.network(subnet: subnet, ["mode": "bridge", "dns": ["nameservers": ["10.201.1.53"]]])
        var ipam = network.plugin["ipam"] as? [String: Any] ?? [:]
        ipam["ranges"] = (ipam["ranges"] as? [Any] ?? []) + [[["subnet": "fd01:201:1::/64"]]]
        network.plugin["ipam"] = ipam
        defer { network.cleanUp() }
        try withTestHosts(4) { hosts in
            let (host, peer, c1, c2) = (hosts[0], hosts[1], hosts[2], hosts[3])
            try Self.segment(host, peer: peer, subnet: subnet)
            let r1 = try add(network, c1, on: host)
            let r2 = try add(network, c2, on: host)

            // The result names the container interface only, with the kernel's MAC and MTU.
            let interfaces = try #require(r1["interfaces"] as? [[String: Any]])
            #expect(interfaces.count == 1)
            let link = try #require(try c1.link("eth0"))
            #expect(interfaces.first?["name"] as? String == "eth0")
            #expect(interfaces.first?["sandbox"] as? String == c1.path)
            #expect(interfaces.first?["mac"] as? String == link["address"] as? String)
            #expect(interfaces.first?["mtu"] as? Int == 1500)
            #expect((r1["ips"] as? [[String: Any]])?.first?["interface"] as? Int == 0)
            #expect((r1["dns"] as? [String: Any])?["nameservers"] as? [String] == ["10.201.1.53"])
            #expect(Self.macvlanMode(link) == "bridge")
            let a1 = try #require(Self.address(r1))
            let a1v6 = try #require(Self.address(r1, family: "6"))
            #expect(Set(try c1.addresses(of: "eth0")) == ["\(a1)/24", "\(a1v6)/64"])
            // Nothing new on the host: the link was born in the container, under another name.
            #expect(try host.linkNames().sorted() == ["lo", "mst0"])

            let a2 = try #require(Self.address(r2))
            #expect(c1.canPing(a2))
            #expect(c2.canPing(a1))
            #expect(c2.canPing(a1v6))

            #expect(try run("DEL", network, c1, on: host).status == 0)
            #expect(try run("DEL", network, c2, on: host).status == 0)
            #expect(try c1.link("eth0") == nil)
            #expect(try c2.link("eth0") == nil)
            #expect(network.leases().isEmpty)
        }
    }

    @Test func privateModeContainersCannotReachEachOtherButReachTheSegment() throws {
        let subnet = "10.201.2.0/24"
        let network = Self.network(subnet: subnet, ["mode": "private"])
        defer { network.cleanUp() }
        try withTestHosts(4) { hosts in
            let (host, peer, c1, c2) = (hosts[0], hosts[1], hosts[2], hosts[3])
            try Self.segment(host, peer: peer, subnet: subnet)
            let r1 = try add(network, c1, on: host)
            let r2 = try add(network, c2, on: host)
            #expect(Self.macvlanMode(try c1.link("eth0")) == "private")
            let a2 = try #require(Self.address(r2))
            let a1 = try #require(Self.address(r1))
            #expect(c1.canPing(Self.peerAddress(subnet)))
            #expect(!c1.canPing(a2, timeoutSeconds: 1))
            #expect(!c2.canPing(a1, timeoutSeconds: 1))
        }
    }

    @Test func containerReachesAnotherHostOnTheMastersSegment() throws {
        let subnet = "10.201.3.0/24"
        let network = Self.network(subnet: subnet)
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, peer, c1) = (hosts[0], hosts[1], hosts[2])
            try Self.segment(host, peer: peer, subnet: subnet)
            let r1 = try add(network, c1, on: host)
            let a1 = try #require(Self.address(r1))
            #expect(c1.canPing(Self.peerAddress(subnet)))
            #expect(peer.canPing(a1))
            // The peer learnt the container's own MAC, not the master's.
            let neighbours = try peer.ipJSON(["neigh", "show", "dev", "up0"])
            let mac = (r1["interfaces"] as? [[String: Any]])?.first?["mac"] as? String
            #expect(neighbours.contains { $0["dst"] as? String == a1 && $0["lladdr"] as? String == mac })
        }
    }

    @Test func masterNamedLikeTheContainerInterfaceAndFoundThroughTheDefaultRoute() throws {
        let subnet = "10.201.4.0/24"
        // No "master": the interface of the host's default route, here named eth0 like CNI_IFNAME.
        let network = Self.network(master: nil, subnet: subnet)
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, peer, c1) = (hosts[0], hosts[1], hosts[2])
            try Self.segment(host, master: "eth0", peer: peer, subnet: subnet)
            try host.mustRun(["ip", "addr", "add", "10.201.4.1/24", "dev", "eth0"])
            try host.mustRun(["ip", "route", "add", "default", "via", Self.peerAddress(subnet)])
            let r1 = try add(network, c1, on: host)
            #expect(Self.macvlanMode(try c1.link("eth0")) == "bridge")
            let hostInfo = try host.link("eth0")?["linkinfo"] as? [String: Any]
            #expect(hostInfo?["info_kind"] as? String == "veth", "the host's eth0 is still the master veth")
            #expect(c1.canPing(Self.peerAddress(subnet)))
            #expect(Self.address(r1) != nil)
        }
    }

    @Test func layer2OnlyWithARuntimeMACAndBroadcastQueueLength() throws {
        let network = Self.network(subnet: nil, ["mode": "vepa", "bcqueuelen": 123, "mac": "02:00:00:00:01:01"])
        defer { network.cleanUp() }
        try withTestHosts(4) { hosts in
            let (host, peer, c1, c2) = (hosts[0], hosts[1], hosts[2], hosts[3])
            try Self.segment(host, peer: peer, subnet: "10.201.5.0/24")
            // CNI_ARGS MAC overrides the config's mac.
            let result = try add(network, c1, on: host, args: "IgnoreUnknown=1;MAC=02:00:00:00:01:02")
            #expect((result["ips"] as? [Any] ?? []).isEmpty)
            let link = try #require(try c1.link("eth0"))
            #expect(link["address"] as? String == "02:00:00:00:01:02")
            #expect((link["flags"] as? [String] ?? []).contains("UP"))
            #expect(Self.macvlanMode(link) == "vepa")
            let data = (link["linkinfo"] as? [String: Any])?["info_data"] as? [String: Any]
            #expect(data?["bcqueuelen"] as? Int == 123)
            #expect(try c1.addresses(of: "eth0").isEmpty)
            let notify = try c1.mustRun(["cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"]).stdout
            #expect(notify.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
            #expect(try run("DEL", network, c1, on: host).status == 0)
            #expect(try c1.link("eth0") == nil)

            // The `mac` capability (runtimeConfig) overrides CNI_ARGS and the config.
            let capability = try run(
                "ADD", network, c2, on: host, args: "IgnoreUnknown=1;MAC=02:00:00:00:01:02",
                extra: ["runtimeConfig": ["mac": "02:00:00:00:01:03"]])
            #expect(capability.status == 0, "\(capability.stdout)")
            #expect(try c2.link("eth0")?["address"] as? String == "02:00:00:00:01:03")
        }
    }

    @Test func masterInsideTheContainer() throws {
        let subnet = "10.201.6.0/24"
        let network = Self.network(master: "vf0", subnet: subnet, ["linkInContainer": true])
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, peer, c1) = (hosts[0], hosts[1], hosts[2])
            try connect(c1, "vf0", to: peer, "up0")
            try peer.mustRun(["ip", "addr", "add", Self.peerAddress(subnet) + "/24", "dev", "up0"])
            let result = try add(network, c1, on: host)
            #expect(Self.macvlanMode(try c1.link("eth0")) == "bridge")
            #expect(c1.canPing(Self.peerAddress(subnet)))
            let check = try run("CHECK", network, c1, on: host, extra: ["prevResult": result])
            #expect(check.status == 0, "\(check.stdout)")
            #expect(try run("DEL", network, c1, on: host).status == 0)
            #expect(try c1.linkNames().sorted() == ["lo", "vf0"])
        }
    }

    @Test(arguments: ["0.2.0", "0.3.1", "0.4.0", "1.0.0"])
    func resultsInOlderSpecVersions(version: String) throws {
        let network = Self.network(subnet: "10.201.14.0/24")
        network.cniVersion = version
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, peer, c1) = (hosts[0], hosts[1], hosts[2])
            try Self.segment(host, peer: peer, subnet: "10.201.14.0/24")
            let result = try add(network, c1, on: host)
            #expect(result["cniVersion"] as? String == version)
            if version == "0.2.0" {
                #expect((result["ip4"] as? [String: Any])?["ip"] as? String != nil)
            } else {
                let ip = (result["ips"] as? [[String: Any]])?.first
                #expect(ip?["interface"] as? Int == 0)
                // Only 0.3.x and 0.4.0 carry `version` on each address.
                #expect((ip?["version"] as? String == "4") == version.hasPrefix("0."))
            }
            #expect(c1.canPing(Self.peerAddress("10.201.14.0/24")))
            #expect(try run("DEL", network, c1, on: host).status == 0)
            #expect(network.leases().isEmpty)
        }
    }

    @Test func failureAfterCreationRemovesTheLinkAndReleasesTheLease() throws {
        try withTestHosts(3) { hosts in
            let (host, peer, c1) = (hosts[0], hosts[1], hosts[2])
            try Self.segment(host, peer: peer, subnet: "10.201.13.0/24")
            // The delegate cannot be run at all.
            let noDelegate = NetworkFixture(plugin: ["type": "macvlan", "master": "mst0", "ipam": ["type": "no-such"]])
            #expect(try run("ADD", noDelegate, c1, on: host).status != 0)
            #expect(try c1.linkNames() == ["lo"])
            // The delegate leases an address, then its route cannot be installed (the gateway
            // is off-link): the lease must be released and the link removed.
            let badRoute = Self.network(subnet: "10.201.13.0/24")
            defer { badRoute.cleanUp() }
            var ipam = try #require(badRoute.plugin["ipam"] as? [String: Any])
            ipam["routes"] = [["dst": "10.250.0.0/16", "gw": "10.99.99.99"]]
            badRoute.plugin["ipam"] = ipam
            let output = try run("ADD", badRoute, c1, on: host)
            #expect(output.status != 0, "\(output.stdout)")
            #expect(output.stdout.contains("10.250.0.0/16"), "failed for another reason: \(output.stdout)")
            #expect(try c1.linkNames() == ["lo"])
            #expect(badRoute.leases().isEmpty)
        }
    }

    @Test func existingContainerInterfaceFailsAddAndLeavesItAlone() throws {
        let network = Self.network(subnet: "10.201.8.0/24")
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, peer, c1) = (hosts[0], hosts[1], hosts[2])
            try Self.segment(host, peer: peer, subnet: "10.201.8.0/24")
            try c1.mustRun(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0"])
            let output = try run("ADD", network, c1, on: host)
            #expect(output.status != 0)
            let info = try c1.link("eth0")?["linkinfo"] as? [String: Any]
            #expect(info?["info_kind"] as? String == "veth")
            #expect(network.leases().isEmpty)
            // DEL does not delete an interface that is not a macvlan.
            #expect(try run("DEL", network, c1, on: host).status == 0)
            #expect(try c1.link("eth0") != nil)
        }
    }

    @Test func delIsIdempotentWhenTheNetnsIsGoneOrNotGiven() throws {
        let network = Self.network(subnet: "10.201.9.0/24")
        defer { network.cleanUp() }
        try withTestHosts(4) { hosts in
            let (host, peer, c1, c2) = (hosts[0], hosts[1], hosts[2], hosts[3])
            try Self.segment(host, peer: peer, subnet: "10.201.9.0/24")
            _ = try add(network, c1, on: host)
            _ = try add(network, c2, on: host)
            #expect(network.leases().count == 2)

            c1.destroy()
            #expect(try run("DEL", network, c1, on: host).status == 0)
            #expect(try run("DEL", network, c1, on: host).status == 0)
            // No CNI_NETNS: the lease still goes.
            #expect(try run("DEL", network, nil, on: host, id: c2.name).status == 0)
            #expect(network.leases().isEmpty)
            #expect(try run("DEL", network, c2, on: host).status == 0)
            #expect(try c2.link("eth0") == nil)
            #expect(try run("DEL", network, c2, on: host).status == 0)
            #expect(try host.linkNames().sorted() == ["lo", "mst0"])
        }
    }

    @Test func checkPassesAfterAddAndFailsWhenTheAddressIsGone() throws {
        let network = Self.network(subnet: "10.201.10.0/24")
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, peer, c1) = (hosts[0], hosts[1], hosts[2])
            try Self.segment(host, peer: peer, subnet: "10.201.10.0/24")
            let result = try add(network, c1, on: host)
            let check = try run("CHECK", network, c1, on: host, extra: ["prevResult": result])
            #expect(check.status == 0, "\(check.stdout) \(check.stderr)")

            // Another mode in the config than in the kernel fails.
            let vepa = try run("CHECK", network, c1, on: host, extra: ["prevResult": result, "mode": "vepa"])
            #expect(vepa.status != 0)

            let address = try #require((result["ips"] as? [[String: Any]])?.first?["address"] as? String)
            try c1.mustRun(["ip", "addr", "del", address, "dev", "eth0"])
            let broken = try run("CHECK", network, c1, on: host, extra: ["prevResult": result])
            #expect(broken.status != 0)
            #expect(broken.stdout.contains(address), "\(broken.stdout)")
        }
    }

    @Test func statusReportsAMissingMasterAsUnavailable() throws {
        try withTestHosts(2) { hosts in
            let (host, peer) = (hosts[0], hosts[1])
            try Self.segment(host, peer: peer, subnet: "10.201.11.0/24")
            let present = Self.network(subnet: "10.201.11.0/24")
            defer { present.cleanUp() }
            #expect(try macvlan.run("STATUS", config: present.config(), in: host).status == 0)
            let missing = Self.network(master: "gone0", subnet: "10.201.11.0/24")
            defer { missing.cleanUp() }
            let output = try macvlan.run("STATUS", config: missing.config(), in: host)
            #expect(output.errorCode == 50, "\(output.stdout)")
            // No master and no default route: nothing to default to.
            let noDefault = Self.network(master: nil, subnet: "10.201.11.0/24")
            defer { noDefault.cleanUp() }
            #expect(try macvlan.run("STATUS", config: noDefault.config(), in: host).errorCode == 50)
        }
    }

    @Test func garbageCollectionReleasesLeasesOfAttachmentsNoLongerValid() throws {
        let network = Self.network(subnet: "10.201.12.0/24")
        defer { network.cleanUp() }
        try withTestHosts(4) { hosts in
            let (host, peer, c1, c2) = (hosts[0], hosts[1], hosts[2], hosts[3])
            try Self.segment(host, peer: peer, subnet: "10.201.12.0/24")
            _ = try add(network, c1, on: host)
            _ = try add(network, c2, on: host)
            let valid: [[String: Any]] = [["containerID": c2.name, "ifname": "eth0"]]
            let output = try macvlan.run(
                "GC", config: network.config(["cni.dev/valid-attachments": valid]), in: host)
            #expect(output.status == 0, "\(output.stdout)")
            #expect(network.leases().count == 1)
        }
    }
}
