import Foundation
import PierTestSupport
import Testing

/// The built `pier` binary driven as a user would, inside a test host (see `PierHarness`).
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ContainerLifecycleTests {
    @Test func detachedHTTPServerIsReachableAndRmLeavesNothing() throws {
        try withPier { pier in
            try pier.addNetwork("t221", subnet: "10.221.\(Int.random(in: 0...255)).0/24")
            let name = pier.name("web")
            let run = try pier.mustPier([
                "run", "-d", "--name", name, "--net", "t221", "python3", "-m", "http.server", "8080",
            ])
            let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.count == 64 && id.allSatisfy(\.isHexDigit), "not an ID: \(id)")

            let address = try #require(try pier.address(of: name))
            #expect(
                eventually {
                    httpGet(from: pier.host, "http://\(address):8080/")?.contains("Directory listing") == true
                })
            // The container is what it claims to be: its own hostname, its own netns pinned where `ip netns` looks.
            #expect(try pier.mustPier(["exec", name, "--", "hostname"]).stdout == "\(name)\n")
            #expect(FileManager.default.fileExists(atPath: "/run/netns/pier-\(name)"))
            let listed = try pier.containers().first { $0["name"] as? String == name }
            #expect(listed?["status"] as? String == "running")
            #expect(listed?["id"] as? String == id)
            // The cache entry is libcni's.
            let cacheFile = pier.cacheDirectory + "/results/t221-\(id)-eth0"
            let cache = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cacheFile)))
                    as? [String: Any])
            #expect(cache["kind"] as? String == "cniCacheV1")
            #expect(cache["netns"] as? String == "/run/netns/pier-\(name)")
            let mode = try FileManager.default.attributesOfItem(atPath: cacheFile)[.posixPermissions] as? Int
            #expect(mode == 0o600)

            // Detached output is kept.
            #expect(try pier.mustPier(["logs", name]).stdout.contains("GET / HTTP"))
            // A running container is not removed without -f.
            #expect(try pier.pier(["rm", name]).status != 0)
            try pier.mustPier(["stop", "--time", "2", name])
            #expect(try pier.containers().first?["status"] as? String == "exited")
            try pier.mustPier(["rm", name])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test(
        .enabled(if: PierHarness.portmapBuilt, "portmap is not built yet: the -p test runs once plugins/portmap lands"))
    func publishedPortIsReachableFromTheHost() throws {
        try withPier { pier in
            try pier.addNetwork("t222", subnet: "10.222.\(Int.random(in: 0...255)).0/24", portmap: true)
            let name = pier.name("pub")
            let hostPort = Int.random(in: 20000...30000)
            try pier.mustPier([
                "run", "-d", "--name", name, "--net", "t222", "-p", "\(hostPort):8080", "python3", "-m", "http.server",
                "8080",
            ])
            let address = try #require(try pier.address(of: name))
            #expect(eventually { httpGet(from: pier.host, "http://\(address):8080/") != nil })
            let gateway = address.split(separator: ".").dropLast().joined(separator: ".") + ".1"
            #expect(
                eventually { httpGet(from: pier.host, "http://\(gateway):\(hostPort)/")?.contains("Directory") == true }
            )
            // The same host port cannot be published twice.
            let clash = try pier.pier([
                "run", "-d", "--name", pier.name("clash"), "--net", "t222", "-p", "\(hostPort):8080", "sleep", "30",
            ])
            #expect(clash.status != 0)
            try pier.mustPier(["rm", "-f", name])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func hostModeSharesTheRuntimeNamespace() throws {
        try withPier { pier in
            let name = pier.name("hostmode")
            let result = try pier.mustPier([
                "run", "--rm", "--name", name, "--net", "host", "readlink", "/proc/self/ns/net",
            ])
            let expected = try pier.host.mustRun(["readlink", "/proc/self/ns/net"]).stdout
            #expect(result.stdout == expected)
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func noneModeHasOnlyLoopbackUp() throws {
        try withPier { pier in
            let name = pier.name("none")
            let result = try pier.mustPier(["run", "--rm", "--name", name, "--net", "none", "ip", "-j", "addr"])
            let links = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
            #expect(links.map { $0["ifname"] as? String } == ["lo"])
            #expect((links.first?["flags"] as? [String])?.contains("UP") == true)
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func containerModeJoinsAnotherContainersNamespace() throws {
        try withPier { pier in
            try pier.addNetwork("t223", subnet: "10.223.\(Int.random(in: 0...255)).0/24")
            let web = pier.name("web")
            try pier.mustPier(["run", "-d", "--name", web, "--net", "t223", "python3", "-m", "http.server", "8080"])
            let address = try #require(try pier.address(of: web))
            let side = pier.name("side")
            let result = try pier.mustPier([
                "run", "--rm", "--name", side, "--net", "container:\(web)", "ip", "-br", "-4", "addr",
            ])
            #expect(result.stdout.contains(address), "\(result.stdout)")
            // Same namespace: the sidecar reaches the server on localhost.
            let fetch = try pier.pier([
                "run", "--rm", "--name", pier.name("side2"), "--net", "container:\(web)", "python3", "-c",
                "import time,urllib.request\nfor _ in range(50):\n try:\n  print(urllib.request.urlopen('http://127.0.0.1:8080/').status); break\n except Exception: time.sleep(0.1)",
            ])
            #expect(fetch.stdout.contains("200"), "\(fetch.stdout) \(fetch.stderr)")
            try pier.mustPier(["rm", "-f", web])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func twoNetworksGiveEth0AndEth1() throws {
        try withPier { pier in
            let third = Int.random(in: 0...255)
            try pier.addNetwork("t224", subnet: "10.224.\(third).0/24")
            try pier.addNetwork("t225", subnet: "10.225.\(third).0/24")
            let name = pier.name("multi")
            try pier.mustPier(["run", "-d", "--name", name, "--net", "t224", "--net", "t225", "sleep", "60"])
            let addresses = try pier.mustPier(["exec", name, "ip", "-br", "-4", "addr"]).stdout
            let lines = addresses.split(separator: "\n").map {
                $0.split(separator: " ", omittingEmptySubsequences: true)
            }
            let eth0 = lines.first { $0.first?.hasPrefix("eth0") == true }
            let eth1 = lines.first { $0.first?.hasPrefix("eth1") == true }
            #expect(eth0?.last?.hasPrefix("10.224.\(third).") == true, "\(addresses)")
            #expect(eth1?.last?.hasPrefix("10.225.\(third).") == true, "\(addresses)")
            #expect(Set(try pier.host.linkNames().filter { $0.hasPrefix("veth") }).count == 2)
            try pier.mustPier(["rm", "-f", name])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func unknownNetworkNamesTheKnownOnes() throws {
        try withPier { pier in
            try pier.addNetwork("t226", subnet: "10.226.\(Int.random(in: 0...255)).0/24")
            let result = try pier.pier(["run", "--name", pier.name("x"), "--net", "nosuch", "true"])
            #expect(result.status != 0)
            #expect(result.stderr.contains("unknown network \"nosuch\""), "\(result.stderr)")
            #expect(result.stderr.contains("t226"), "\(result.stderr)")
            #expect(try pier.leftovers() == [])
        }
    }
}
