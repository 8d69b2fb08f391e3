import Foundation
import PierTestSupport
import Testing

/// `pier network create|ls|rm|prune|connect|disconnect`, driven as a user would inside a test host.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct NetworkManagementTests {
    /// `network create` with this harness's lease directory and IPAM plugin.
    @discardableResult
    static func create(_ pier: PierHarness, _ name: String, _ options: [String] = []) throws -> CommandResult {
        try pier.pier(
            [
                "network", "create", "--ipam-driver", PierHarness.ipamPlugin.type, "--ipam-opt",
                "dataDir=\(pier.leaseDirectory)",
            ]
                + options + [name])
    }

    static func conflist(_ pier: PierHarness, _ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: pier.configDirectory + "/60-\(name).conflist"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func subnets(_ list: [String: Any]) -> [String] {
        let plugins = list["plugins"] as? [[String: Any]] ?? []
        let ranges = (plugins.first?["ipam"] as? [String: Any])?["ranges"] as? [[[String: Any]]] ?? []
        return ranges.flatMap { $0.compactMap { $0["subnet"] as? String } }
    }

    /// The IPv4 address of `ifName` in a container, from the kernel.
    static func address(_ pier: PierHarness, _ container: String, _ ifName: String) throws -> String? {
        let text = try pier.mustPier(["exec", container, "ip", "-j", "-4", "addr", "show", ifName]).stdout
        let links = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] ?? []
        let info = links.first?["addr_info"] as? [[String: Any]] ?? []
        return info.first?["local"] as? String
    }

    @Test func everyNetworkSubcommandHasHelp() throws {
        for subcommand in ["create", "ls", "inspect", "rm", "prune", "connect", "disconnect"] {
            let result = try runCommand([builtProductsDirectory + "/pier", "network", subcommand, "--help"])
            #expect(
                result.status == 0 && result.stdout.contains("USAGE: pier network \(subcommand)"), "\(result.stdout)")
        }
    }

    @Test func createPicksFreeSubnetsRefusesOverlapsAndRemoves() throws {
        try withPier { pier in
            // An address the test host holds: the pool must skip the subnet it is in.
            try pier.host.mustRun(["ip", "addr", "add", "172.18.0.1/16", "dev", "lo"])

            try #require(try Self.create(pier, "first").succeeded)
            #expect(Self.subnets(try Self.conflist(pier, "first")) == ["172.17.0.0/16"])
            try #require(try Self.create(pier, "second").succeeded)
            #expect(Self.subnets(try Self.conflist(pier, "second")) == ["172.19.0.0/16"])
            try #require(
                try Self.create(pier, "given", ["--subnet", "172.20.0.0/16", "--gateway", "172.20.0.254"]).succeeded)
            try #require(try Self.create(pier, "third", ["--ipv6"]).succeeded)
            let third = Self.subnets(try Self.conflist(pier, "third"))
            #expect(
                third.count == 2 && third.first == "172.21.0.0/16" && third.last?.hasPrefix("fd") == true, "\(third)")

            // The picked subnets work: a container on `third` gets an address from each.
            let dual = pier.name("dual")
            try pier.mustPier(["run", "-d", "--name", dual, "--net", "third", "sleep", "300"])
            let addresses = try pier.mustPier(["exec", dual, "ip", "-br", "addr", "show", "eth0"]).stdout
            #expect(addresses.contains("172.21.0.") && addresses.contains(" fd"), "\(addresses)")
            try pier.mustPier(["rm", "-f", dual])

            let overlap = try Self.create(pier, "clash", ["--subnet", "172.17.5.0/24"])
            #expect(!overlap.succeeded && overlap.stderr.contains("network first"), "\(overlap.stderr)")
            let duplicate = try Self.create(pier, "first")
            #expect(!duplicate.succeeded && duplicate.stderr.contains("already exists"), "\(duplicate.stderr)")
            let invalid = try Self.create(pier, "bad/name")
            #expect(!invalid.succeeded && invalid.stderr.contains("invalid name"), "\(invalid.stderr)")
            #expect(!FileManager.default.fileExists(atPath: pier.configDirectory + "/60-clash.conflist"))

            // Labels and the driver go where libcni does not look; bridge networks chain portmap.
            let given = try Self.conflist(pier, "given")
            let plugins = given["plugins"] as? [[String: Any]] ?? []
            #expect((given["pier"] as? [String: Any])?["driver"] as? String == "bridge")
            #expect(plugins.map { $0["type"] as? String } == ["bridge", "portmap"])
            #expect(plugins.first?["ipMasq"] as? Bool == true)

            let list = try pier.mustPier(["network", "ls"]).stdout
            #expect(list.contains("first") && list.contains("172.19.0.0/16") && list.contains("bridge"), "\(list)")

            // A container keeps its network from rm and prune; rm -f disconnects it.
            let user = pier.name("user")
            try pier.mustPier(["run", "-d", "--name", user, "--net", "first", "sleep", "300"])
            let busy = try pier.pier(["network", "rm", "first"])
            #expect(!busy.succeeded && busy.stderr.contains(user), "\(busy.stderr)")
            #expect(try pier.mustPier(["network", "ls"]).stdout.contains(user))
            let pruned = try pier.mustPier(["network", "prune", "-f"]).stdout.split(separator: "\n").sorted()
            #expect(pruned == ["given", "second", "third"])
            try pier.mustPier(["network", "rm", "-f", "first"])
            let left = try pier.leftovers().filter { !$0.hasPrefix("state") && !$0.hasPrefix("netns") }
            #expect(left == [], "\(left)")
            #expect(try pier.mustPier(["exec", user, "ip", "-br", "link"]).stdout.contains("eth0") == false)
            #expect(!FileManager.default.fileExists(atPath: pier.configDirectory + "/60-first.conflist"))
            // Configs pier did not write are not its to remove.
            try pier.addNetwork("handmade", subnet: "10.229.1.0/24")
            let foreign = try pier.pier(["network", "rm", "handmade"])
            #expect(!foreign.succeeded && foreign.stderr.contains("not created by"), "\(foreign.stderr)")
        }
    }

    @Test func containerOnTwoUserNetworksThroughRunAndConnect() throws {
        try withPier { pier in
            let third = Int.random(in: 0...255)
            try #require(try Self.create(pier, "front", ["--subnet", "10.224.\(third).0/24"]).succeeded)
            try #require(try Self.create(pier, "back", ["--subnet", "10.225.\(third).0/24"]).succeeded)
            let app = pier.name("app")
            let web = pier.name("web")
            let db = pier.name("db")
            try pier.mustPier(["run", "-d", "--name", app, "--net", "front", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", web, "--net", "front", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", db, "--net", "back", "sleep", "300"])
            let webAddress = try #require(try Self.address(pier, web, "eth0"))
            let dbAddress = try #require(try Self.address(pier, db, "eth0"))
            #expect(try pier.pier(["exec", app, "ping", "-c1", "-W1", webAddress]).succeeded)
            // Networks are isolated from each other until app joins back.
            #expect(!(try pier.pier(["exec", app, "ping", "-c1", "-W1", dbAddress]).succeeded))

            try pier.mustPier(["network", "connect", "--alias", "api", "back", app])
            let joined = try #require(try Self.address(pier, app, "eth1"))
            #expect(joined.hasPrefix("10.225.\(third)."))
            #expect(try pier.pier(["exec", app, "ping", "-c1", "-W1", "-I", "eth1", dbAddress]).succeeded)
            #expect(try pier.pier(["exec", app, "ping", "-c1", "-W1", webAddress]).succeeded)
            let inspect = try pier.mustPier(["inspect", app]).stdout
            #expect(inspect.contains("back") && inspect.contains(joined), "\(inspect)")
            let record = try pier.containers().first { $0["name"] as? String == app }
            let attachments = record?["attachments"] as? [[String: Any]] ?? []
            #expect(attachments.map { $0["ifName"] as? String } == ["eth0", "eth1"])
            let id = try #require(record?["id"] as? String)
            #expect(FileManager.default.fileExists(atPath: pier.cacheDirectory + "/results/back-\(id)-eth1"))
            let again = try pier.pier(["network", "connect", "back", app])
            #expect(!again.succeeded && again.stderr.contains("already attached"), "\(again.stderr)")

            // A connect whose ADD fails (an address outside the subnet) leaves the container as it was.
            try #require(try Self.create(pier, "side", ["--subnet", "10.223.\(third).0/24"]).succeeded)
            let refused = try pier.pier(["network", "connect", "--ip", "10.99.0.5", "side", app])
            #expect(!refused.succeeded && refused.stderr.contains("10.99.0.5"), "\(refused.stderr)")
            #expect(!(try pier.mustPier(["exec", app, "ip", "-br", "link"]).stdout.contains("eth2")))
            let unchanged = try pier.containers().first { $0["name"] as? String == app }
            #expect((unchanged?["attachments"] as? [[String: Any]])?.count == 2)
            #expect(!FileManager.default.fileExists(atPath: pier.cacheDirectory + "/results/side-\(id)-eth2"))

            try pier.mustPier(["network", "disconnect", "back", app])
            let links = try pier.mustPier(["exec", app, "ip", "-br", "link"]).stdout
            #expect(!links.contains("eth1") && links.contains("eth0"), "\(links)")
            #expect(!FileManager.default.fileExists(atPath: pier.cacheDirectory + "/results/back-\(id)-eth1"))
            let leases = (try? FileManager.default.contentsOfDirectory(atPath: pier.leaseDirectory + "/back")) ?? []
            #expect(!leases.contains(joined), "\(leases)")
            #expect(!(try pier.pier(["exec", app, "ping", "-c1", "-W1", dbAddress]).succeeded))
            let after = try pier.containers().first { $0["name"] as? String == app }
            #expect((after?["attachments"] as? [[String: Any]])?.count == 1)
            try pier.mustPier(["rm", "-f", app, web, db])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func internalNetworkKeepsTrafficInside() throws {
        try withPier { pier in
            // Something outside the network the containers must not reach: an address of the test host.
            try pier.host.mustRun(["ip", "addr", "add", "10.198.0.1/24", "dev", "lo"])
            let third = Int.random(in: 0...255)
            try #require(try Self.create(pier, "vault", ["--internal", "--subnet", "10.226.\(third).0/24"]).succeeded)
            let list = try Self.conflist(pier, "vault")
            let plugins = list["plugins"] as? [[String: Any]] ?? []
            #expect(!plugins.contains { $0["type"] as? String == "portmap" })
            #expect(plugins.first?["ipMasq"] as? Bool == false)
            #expect(plugins.first?["isDefaultGateway"] as? Bool == false)

            let one = pier.name("one")
            let two = pier.name("two")
            try pier.mustPier(["run", "-d", "--name", one, "--net", "vault", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", two, "--net", "vault", "sleep", "300"])
            let twoAddress = try #require(try Self.address(pier, two, "eth0"))
            #expect(try pier.pier(["exec", one, "ping", "-c1", "-W1", twoAddress]).succeeded)
            #expect(!(try pier.pier(["exec", one, "ping", "-c1", "-W1", "10.198.0.1"]).succeeded))
            let routes = try pier.mustPier(["exec", one, "ip", "-j", "route", "show", "default"]).stdout
            #expect(routes.trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "\(routes)")

            let published = try pier.pier([
                "run", "-d", "--name", pier.name("pub"), "--net", "vault", "-p", "8080:80", "sleep", "1",
            ])
            #expect(!published.succeeded && published.stderr.contains("internal"), "\(published.stderr)")
            try pier.mustPier(["rm", "-f", one, two])
            #expect(try pier.leftovers() == [])
        }
    }

    /// With a name service on the CNI path, conflists chain it (internal ones without upstream
    /// forwarding), and `run --alias` / `network connect --alias` reach it as Podman's `aliases`.
    @Test func nameServiceIsChainedAndGetsAliases() throws {
        try withPier { pier in
            // A stand-in name service: logs its stdin, passes the previous result on.
            let log = pier.directory + "/names.log"
            let script = """
                #!/usr/bin/env python3
                import json, os, sys
                request = json.load(sys.stdin)
                with open("\(log)", "a") as f:
                    f.write(os.environ["CNI_COMMAND"] + " " + json.dumps(request, sort_keys=True) + "\\n")
                if os.environ["CNI_COMMAND"] == "ADD":
                    print(json.dumps(request["prevResult"]))
                """
            let plugin = pier.pluginDirectory + "/names"
            try script.write(toFile: plugin, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: plugin)
            let third = Int.random(in: 0...255)
            try #require(try Self.create(pier, "named", ["--subnet", "10.228.\(third).0/24"]).succeeded)
            try #require(try Self.create(pier, "hidden", ["--internal", "--subnet", "10.229.\(third).0/24"]).succeeded)
            let named = (try Self.conflist(pier, "named"))["plugins"] as? [[String: Any]] ?? []
            #expect(named.map { $0["type"] as? String } == ["bridge", "portmap", "names"])
            #expect((named.last?["capabilities"] as? [String: Any])?["aliases"] as? Bool == true)
            #expect(named.last?["internal"] == nil)
            let hidden = (try Self.conflist(pier, "hidden"))["plugins"] as? [[String: Any]] ?? []
            #expect(hidden.map { $0["type"] as? String } == ["bridge", "names"])
            #expect(hidden.last?["internal"] as? Bool == true)

            let app = pier.name("app")
            try pier.mustPier([
                "run", "-d", "--name", app, "--net", "named", "--alias", "web", "--alias", "www", "sleep", "300",
            ])
            try pier.mustPier(["network", "connect", "--alias", "db", "hidden", app])
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 2, "\(lines)")
            #expect(
                lines.first?.contains(#""runtimeConfig": {"aliases": {"named": ["\#(app)", "web", "www"]}}"#) == true,
                "\(lines)")
            #expect(
                lines.last?.contains(#""runtimeConfig": {"aliases": {"hidden": ["\#(app)", "db"]}}"#) == true,
                "\(lines)")
            try pier.mustPier(["rm", "-f", app])
            #expect(
                try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix("DEL") }
                    .count == 2)
            #expect(try pier.leftovers() == [])
        }
    }

    @Test(
        .enabled(
            if: cnitoolPath != nil,
            "set PIER_CNITOOL to a cnitool built from Debian's libcni (Tests/PierCLITests/cnitool/README.md)"))
    func generatedConflistRunsUnderLibcni() throws {
        try withPier { pier in
            try #require(
                try Self.create(
                    pier, "plain", ["--subnet", "10.227.\(Int.random(in: 0...255)).0/24", "--label", "team=a"]
                ).succeeded)
            try withTestHosts(1) { hosts in
                let environment = [
                    "nsenter", "--net=\(pier.host.path)", "env", "NETCONFPATH=\(pier.configDirectory)",
                    "CNI_PATH=\(pier.pluginDirectory)", "CNI_CACHE_DIR=\(pier.cacheDirectory)", cnitoolPath ?? "",
                ]
                let added = try runCommand(environment + ["add", "plain", hosts[0].path])
                try #require(added.succeeded, "\(added.stderr)")
                #expect(try hosts[0].linkNames().contains("eth0"))
                #expect(added.stdout.contains("10.227."), "\(added.stdout)")
                // What another runtime attached keeps the network from rm and prune.
                let inUse = try pier.pier(["network", "rm", "plain"])
                #expect(!inUse.succeeded && inUse.stderr.contains("does not own"), "\(inUse.stderr)")
                #expect(try pier.mustPier(["network", "prune"]).stdout.isEmpty)
                let deleted = try runCommand(environment + ["del", "plain", hosts[0].path])
                #expect(deleted.succeeded, "\(deleted.stderr)")
                #expect(try hosts[0].linkNames() == ["lo"])
                #expect(try pier.leftovers() == [])
                try pier.mustPier(["network", "rm", "plain"])
            }
        }
    }
}
