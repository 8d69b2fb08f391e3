import Foundation
import PierTestSupport
import Testing

/// The host plugin, executed as a runtime would inside a test host (the "host" netns): host
/// networking mode, and host devices (veth ends in the test host, as this kernel has no dummy
/// driver) moved into containers that are further test hosts. Subnets 10.209.x.0/24.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct HostPluginTests {
    let hostPlugin = PluginRunner("host")

    static func deviceNetwork(_ selectors: [String: Any], subnet: String?) -> NetworkFixture {
        var plugin: [String: Any] = ["type": "host"]
        for (key, value) in selectors { plugin[key] = value }
        if let subnet {
            let base = subnet.split(separator: "/")[0].split(separator: ".").prefix(3).joined(separator: ".")
            plugin["ipam"] = [
                "type": "ipam",
                "ranges": [[["subnet": subnet, "rangeStart": "\(base).10", "rangeEnd": "\(base).100"]]],
            ]
        }
        return NetworkFixture(plugin: plugin)
    }

    func run(
        _ command: String, _ network: NetworkFixture, netns: String, id: String = "c1", ifname: String = "eth0",
        in host: TestHost, extra: [String: Any] = [:]
    ) throws -> PluginOutput {
        try hostPlugin.run(
            command, config: network.config(extra), containerID: id, netns: netns, ifname: ifname, in: host)
    }

    static func flags(_ link: [String: Any]?) -> [String] { link?["flags"] as? [String] ?? [] }

    /// Polls `condition` for up to `seconds`: for kernel work that completes asynchronously.
    static func eventually(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    // MARK: Host networking mode

    @Test func hostModeReportsTheHostsOwnInterfacesAddressesAndRoutes() throws {
        let network = NetworkFixture(plugin: ["type": "host", "dns": ["nameservers": ["10.209.1.53"]]])
        try withTestHosts(2) { hosts in
            let (host, peer) = (hosts[0], hosts[1])
            try connect(host, "hn0", to: peer, "hp0")
            try host.mustRun(["ip", "addr", "add", "10.209.1.1/24", "dev", "hn0"])
            try host.mustRun(["ip", "addr", "add", "fd09:1::1/64", "dev", "hn0", "nodad"])
            try host.mustRun(["ip", "route", "add", "default", "via", "10.209.1.254"])
            let linksBefore = try host.linkNames()

            let output = try run("ADD", network, netns: host.path, in: host)
            try #require(output.status == 0, "\(output.stdout) \(output.stderr)")
            let result = output.object
            let interfaces = try #require(result["interfaces"] as? [[String: Any]])
            #expect(Set(interfaces.compactMap { $0["name"] as? String }) == Set(linksBefore))
            #expect(interfaces.allSatisfy { $0["sandbox"] == nil })
            let hn0 = try #require(interfaces.first { $0["name"] as? String == "hn0" })
            #expect(hn0["mac"] as? String == (try host.link("hn0")?["address"] as? String))
            #expect(hn0["mtu"] as? Int == 1500)

            // Exactly the global addresses `ip` reports, each pointing at its interface.
            let kernel = try host.ipJSON(["addr", "show", "scope", "global"]).flatMap { link in
                (link["addr_info"] as? [[String: Any]] ?? []).compactMap { info -> String? in
                    guard let local = info["local"] as? String, let length = info["prefixlen"] as? Int else {
                        return nil
                    }
                    return "\(link["ifname"] as? String ?? "?") \(local)/\(length)"
                }
            }
            let ips = try #require(result["ips"] as? [[String: Any]])
            let reported = ips.compactMap { ip -> String? in
                guard let index = ip["interface"] as? Int, interfaces.indices.contains(index) else { return nil }
                return "\(interfaces[index]["name"] as? String ?? "?") \(ip["address"] as? String ?? "?")"
            }
            #expect(Set(reported) == Set(kernel))
            #expect(Set(kernel) == ["hn0 10.209.1.1/24", "hn0 fd09:1::1/64"])
            let v4 = ips.first { ($0["address"] as? String) == "10.209.1.1/24" }
            #expect(v4?["gateway"] as? String == "10.209.1.254")

            let routes = try #require(result["routes"] as? [[String: Any]])
            let destinations = Set(routes.compactMap { $0["dst"] as? String })
            #expect(destinations.isSuperset(of: ["0.0.0.0/0", "10.209.1.0/24", "fd09:1::/64"]))
            #expect(routes.contains { $0["dst"] as? String == "0.0.0.0/0" && $0["gw"] as? String == "10.209.1.254" })
            #expect((result["dns"] as? [String: Any])?["nameservers"] as? [String] == ["10.209.1.53"])

            // Nothing changed; CHECK and DEL are harmless.
            #expect(try host.linkNames() == linksBefore)
            let check = try run("CHECK", network, netns: host.path, in: host, extra: ["prevResult": result])
            #expect(check.status == 0, "\(check.stdout)")
            #expect(try run("DEL", network, netns: host.path, in: host).status == 0)
            #expect(try host.addresses(of: "hn0").sorted() == ["10.209.1.1/24", "fd09:1::1/64"])
        }
    }

    @Test func hostModeInAnyOtherNetnsFailsWithCode7AndChangesNothing() throws {
        let network = NetworkFixture(plugin: ["type": "host"])
        try withTestHosts(2) { hosts in
            let (host, container) = (hosts[0], hosts[1])
            let output = try run("ADD", network, netns: container.path, in: host)
            #expect(output.errorCode == 7)
            #expect((output.object["msg"] as? String ?? "").contains("own network namespace"), "\(output.stdout)")
            #expect(try container.linkNames() == ["lo"])
            #expect(try host.linkNames() == ["lo"])
            #expect(
                try run("CHECK", network, netns: container.path, in: host, extra: ["prevResult": [:]]).errorCode == 7)
            #expect(try run("DEL", network, netns: container.path, in: host).status == 0)
            // An ipam section has no meaning here.
            let withIPAM = NetworkFixture(plugin: ["type": "host", "ipam": ["type": "ipam"]])
            #expect(try run("ADD", withIPAM, netns: host.path, in: host).errorCode == 7)
        }
    }

    // MARK: Host devices

    @Test func movedDeviceCarriesTrafficAndReturnsWithItsNameMTUAndState() throws {
        let network = Self.deviceNetwork(["device": "hd0"], subnet: "10.209.2.0/24")
        defer { network.cleanUp() }
        try withTestHosts(3) { hosts in
            let (host, peer, container) = (hosts[0], hosts[1], hosts[2])
            try connect(host, "hd0", to: peer, "hp0")
            try host.mustRun(["ip", "link", "set", "hd0", "mtu", "1400", "alias", "uplink to peer"])
            try peer.mustRun(["ip", "link", "set", "hp0", "mtu", "1400"])
            try peer.mustRun(["ip", "addr", "add", "10.209.2.254/24", "dev", "hp0"])

            let output = try run("ADD", network, netns: container.path, id: container.name, in: host)
            try #require(output.status == 0, "\(output.stdout) \(output.stderr)")
            #expect(try host.link("hd0") == nil)
            let moved = try #require(try container.link("eth0"))
            #expect(moved["ifalias"] as? String == "pier-host:hd0:1400:up:uplink to peer")
            #expect(moved["mtu"] as? Int == 1400)
            let interfaces = output.object["interfaces"] as? [[String: Any]]
            #expect(interfaces?.first?["sandbox"] as? String == container.path)
            #expect(interfaces?.first?["mac"] as? String == moved["address"] as? String)
            #expect(container.canPing("10.209.2.254"))
            let check = try run(
                "CHECK", network, netns: container.path, id: container.name, in: host,
                extra: ["prevResult": output.object])
            #expect(check.status == 0, "\(check.stdout)")

            #expect(try run("DEL", network, netns: container.path, id: container.name, in: host).status == 0)
            #expect(try container.link("eth0") == nil)
            let back = try #require(try host.link("hd0"))
            #expect(back["mtu"] as? Int == 1400)
            #expect(Self.flags(back).contains("UP"))
            #expect(back["ifalias"] as? String == "uplink to peer")
            #expect(try host.addresses(of: "hd0").isEmpty)
            #expect(network.leases().isEmpty)
            // A repeated DEL finds nothing to do.
            #expect(try run("DEL", network, netns: container.path, id: container.name, in: host).status == 0)
            #expect(try host.link("hd0") != nil)
        }
    }

    @Test func downDeviceSelectedByHardwareAddressComesBackDown() throws {
        try withTestHosts(3) { hosts in
            let (host, peer, container) = (hosts[0], hosts[1], hosts[2])
            try connect(host, "hd1", to: peer, "hp1")
            // Another host interface already has the container-side name: it must not matter.
            try host.mustRun(["ip", "link", "add", "net1", "type", "veth", "peer", "name", "net1p"])
            try host.mustRun(["ip", "link", "set", "hd1", "down", "mtu", "1300"])
            let mac = try #require(try host.link("hd1")?["address"] as? String)
            let network = Self.deviceNetwork(["hwaddr": mac.uppercased()], subnet: nil)
            defer { network.cleanUp() }

            let output = try run("ADD", network, netns: container.path, ifname: "net1", in: host)
            try #require(output.status == 0, "\(output.stdout) \(output.stderr)")
            let moved = try #require(try container.link("net1"))
            #expect(Self.flags(moved).contains("UP"))
            #expect(moved["ifalias"] as? String == "pier-host:hd1:1300:down")
            #expect(try host.link("net1") != nil)

            #expect(try run("DEL", network, netns: container.path, ifname: "net1", in: host).status == 0)
            let back = try #require(try host.link("hd1"))
            #expect(!Self.flags(back).contains("UP"))
            #expect(back["mtu"] as? Int == 1300)
            #expect(back["ifalias"] == nil)
        }
    }

    @Test func deviceSelectedByKernelPath() throws {
        // Virtual devices live in /sys/devices/virtual/net/; `ip netns exec` shows the test
        // host's own, and the first of "hd7" and "lo" in name order is the veth.
        let network = Self.deviceNetwork(["kernelpath": "/sys/devices/virtual", "device": "hd7"], subnet: nil)
        try withTestHosts(3) { hosts in
            let (host, peer, container) = (hosts[0], hosts[1], hosts[2])
            try connect(host, "hd7", to: peer, "hp7")
            let output = try run("ADD", network, netns: container.path, in: host)
            #expect(output.status == 0, "\(output.stdout)")
            #expect(try container.link("eth0")?["ifalias"] as? String == "pier-host:hd7:1500:up")
            #expect(try run("DEL", network, netns: container.path, in: host).status == 0)
            #expect(try host.link("hd7") != nil)
        }
    }

    @Test func delSucceedsAndReleasesTheLeaseWhenTheNetnsIsGoneOrNotGiven() throws {
        let network = Self.deviceNetwork(["device": "hd2"], subnet: "10.209.3.0/24")
        defer { network.cleanUp() }
        let second = Self.deviceNetwork(["device": "hd3"], subnet: "10.209.4.0/24")
        defer { second.cleanUp() }
        try withTestHosts(4) { hosts in
            let (host, peer, c1, c2) = (hosts[0], hosts[1], hosts[2], hosts[3])
            try connect(host, "hd2", to: peer, "hp2")
            try connect(host, "hd3", to: peer, "hp3")
            try #require(try run("ADD", network, netns: c1.path, id: "c1", in: host).status == 0)
            try #require(try run("ADD", second, netns: c2.path, id: "c2", in: host).status == 0)
            #expect(network.leases().count == 1)

            // The container netns went first: the veth died with it, nothing is left to return.
            c1.destroy()
            #expect(try run("DEL", network, netns: c1.path, id: "c1", in: host).status == 0)
            #expect(network.leases().isEmpty)
            #expect(try host.link("hd2") == nil)
            // The kernel tears a netns down asynchronously; the veth pair goes with it, soon.
            #expect(Self.eventually { (try? peer.link("hp2")) == nil })
            #expect(try run("DEL", network, netns: c1.path, id: "c1", in: host).status == 0)

            // No CNI_NETNS at all: the lease still goes (the reference leaks it here).
            #expect(try run("DEL", second, netns: "", id: "c2", in: host).status == 0)
            #expect(second.leases().isEmpty)
            // Given the netns later, DEL brings the device home.
            #expect(try run("DEL", second, netns: c2.path, id: "c2", in: host).status == 0)
            #expect(try host.link("hd3") != nil)
            #expect(try c2.linkNames() == ["lo"])
        }
    }

    @Test func aDeviceTheKernelReturnedFromADeletedNetnsGetsItsIdentityBack() throws {
        // A physical device comes back from a destroyed netns by itself, down, under its
        // container-side name and with Pier's alias; a veth cannot, so this one is staged so.
        let network = Self.deviceNetwork(["device": "hd6"], subnet: nil)
        try withTestHosts(2) { hosts in
            let (host, peer) = (hosts[0], hosts[1])
            try connect(host, "eth0", to: peer, "hp6")
            try host.mustRun(["ip", "link", "set", "eth0", "down", "alias", "pier-host:hd6:1400:up:lab uplink"])
            #expect(try run("DEL", network, netns: "", in: host).status == 0)
            let device = try #require(try host.link("hd6"))
            #expect(device["mtu"] as? Int == 1400)
            #expect(Self.flags(device).contains("UP"))
            #expect(device["ifalias"] as? String == "lab uplink")
            #expect(try host.link("eth0") == nil)
        }
    }

    @Test func refusalsLeaveTheDeviceWhereItWas() throws {
        try withTestHosts(3) { hosts in
            let (host, peer, container) = (hosts[0], hosts[1], hosts[2])
            try connect(host, "hd4", to: peer, "hp4")
            for selectors in [
                ["device": "nosuch0"], ["device": "lo"], ["hwaddr": "not-a-mac"],
                // Two keys naming different interfaces (loopback's MAC is all zeros).
                ["device": "hd4", "hwaddr": "00:00:00:00:00:00"],
                ["pciBusID": "../../etc"], ["kernelpath": "/etc/passwd"], ["kernelpath": "/sys/devices/../../etc"],
            ] {
                let network = Self.deviceNetwork(selectors, subnet: "10.209.5.0/24")
                defer { network.cleanUp() }
                let output = try run("ADD", network, netns: container.path, in: host)
                #expect(output.errorCode == 7, "\(selectors): \(output.stdout)")
                #expect(try container.linkNames() == ["lo"])
                #expect(network.leases().isEmpty)
            }
            let network = Self.deviceNetwork(["device": "hd4"], subnet: "10.209.5.0/24")
            defer { network.cleanUp() }
            // Into the plugin's own netns: skel's code 8.
            #expect(try run("ADD", network, netns: host.path, in: host).errorCode == 8)
            // The container already has the name.
            try container.mustRun(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"])
            #expect(try run("ADD", network, netns: container.path, in: host).status != 0)
            let device = try #require(try host.link("hd4"))
            #expect(Self.flags(device).contains("UP"))
            #expect(device["ifalias"] == nil)
            #expect(network.leases().isEmpty)
            // DEL leaves an interface it did not move alone.
            #expect(try run("DEL", network, netns: container.path, in: host).status == 0)
            #expect(try container.link("eth0") != nil)
        }
    }

    @Test func failedIPAMPutsTheDeviceBack() throws {
        // A delegate that does not exist fails after the move: the device must come home.
        let network = NetworkFixture(plugin: ["type": "host", "device": "hd5", "ipam": ["type": "no-such-ipam"]])
        try withTestHosts(3) { hosts in
            let (host, peer, container) = (hosts[0], hosts[1], hosts[2])
            try connect(host, "hd5", to: peer, "hp5")
            try host.mustRun(["ip", "link", "set", "hd5", "mtu", "1450"])
            let output = try run("ADD", network, netns: container.path, in: host)
            #expect(output.status != 0)
            let device = try #require(try host.link("hd5"))
            #expect(device["mtu"] as? Int == 1450)
            #expect(Self.flags(device).contains("UP"))
            #expect(device["ifalias"] == nil)
            #expect(try container.linkNames() == ["lo"])
        }
    }
}
