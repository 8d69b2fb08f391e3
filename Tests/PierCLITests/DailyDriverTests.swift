import Foundation
import PierTestSupport
import Testing

/// What a newcomer hits in the first hour with `pier` (issue 21): each test reproduces one defect.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct DailyDriverDefectTests {
    /// Leases in the harness's lease directory, by network.
    func leases(_ pier: PierHarness) throws -> [String] {
        try pier.leftovers().filter { $0.hasPrefix("lease") }
    }

    /// Two `--root`s and a cnitool attachment share one namespace, network, cache and lease directory:
    /// `gc` under either root collects none of the others' live attachments, and `doctor` calls none
    /// of their leases stale.
    @Test func gcUnderOneRootSparesAnotherRootsAndCnitoolsAttachments() throws {
        try withPier { pier in
            let third = Int.random(in: 0...255)
            try pier.addNetwork("t230", subnet: "10.230.\(third).0/24")
            let rootB = pier.directory + "/rootB"
            let other = pier.name("other")
            let mine = pier.name("mine")
            defer { _ = try? pier.pier(["--root", rootB, "rm", "-f", other]) }
            try pier.mustPier(["--root", rootB, "run", "-d", "--name", other, "--net", "t230", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", mine, "--net", "t230", "sleep", "300"])
            try withTestHosts(2) { hosts in
                // cnitool's attachments: `pier plugin` (cnitool's cache and IDs), and the real cnitool on a
                // network of a version Debian's libcni speaks, when one is built.
                try pier.mustPier(["plugin", "add", "--net", "t230", "--netns", hosts[0].path])
                defer { _ = try? pier.pier(["plugin", "del", "--net", "t230", "--netns", hosts[0].path]) }
                var expectedLeases = 3
                if let cnitoolPath {
                    try pier.addNetwork("t237", subnet: "10.237.\(third).0/24", cniVersion: "1.0.0")
                    let added = try runCommand(
                        [
                            "nsenter", "--net=\(pier.host.path)", "env", "NETCONFPATH=\(pier.configDirectory)",
                            "CNI_PATH=\(pier.pluginDirectory)", "CNI_CACHE_DIR=\(pier.cacheDirectory)", cnitoolPath,
                            "add", "t237", hosts[1].path,
                        ])
                    try #require(added.succeeded, "\(added.stderr)")
                    expectedLeases += 1
                }
                defer { _ = try? pier.pier(["plugin", "del", "--net", "t237", "--netns", hosts[1].path]) }
                let before = try leases(pier)
                #expect(before.count == expectedLeases, "\(before)")

                try pier.mustPier(["gc"])
                try pier.mustPier(["--root", rootB, "gc"])

                #expect(try leases(pier) == before)
                let otherAddresses = try pier.mustPier(["--root", rootB, "exec", other, "ip", "-br", "-4", "addr"])
                #expect(otherAddresses.stdout.contains("eth0"), "\(otherAddresses.stdout)")
                let mineAddresses = try pier.mustPier(["exec", mine, "ip", "-br", "-4", "addr"])
                #expect(mineAddresses.stdout.contains("eth0"), "\(mineAddresses.stdout)")
                #expect(try hosts[0].linkNames().contains("eth0"))
                if cnitoolPath != nil { #expect(try hosts[1].linkNames().contains("eth0")) }
                try pier.mustPier(["check", mine])
                try pier.mustPier(["--root", rootB, "check", other])

                for root in [pier.root, rootB] {
                    let doctor = try pier.pier([
                        "--root", root, "doctor", "--json", "--skip-kernel-probes", "--lease-dir", pier.leaseDirectory,
                        "--store-dir", pier.directory + "/store",
                    ])
                    #expect(!doctor.stdout.contains("stale.lease"), "\(doctor.stdout)")
                    #expect(!doctor.stdout.contains("stale.veth"), "\(doctor.stdout)")
                }
                // The next container gets an address nobody holds.
                let next = pier.name("next")
                try pier.mustPier(["run", "-d", "--name", next, "--net", "t230", "sleep", "300"])
                let taken = try pier.mustPier(["--root", rootB, "ps", "--json"]).stdout
                let nextAddress = try #require(try pier.address(of: next))
                #expect(!taken.contains("\"\(nextAddress)/"), "\(nextAddress) is also held in \(taken)")
                #expect(try pier.address(of: mine) != nextAddress)
            }
        }
    }

    /// `--help`/`-h` before the command prints help and creates nothing; unknown options are errors;
    /// options after the command belong to the command.
    @Test func helpAndUnknownOptionsNeverRunAContainer() throws {
        try withPier { pier in
            for arguments in [
                ["create", "--help"], ["run", "--help"], ["run", "-h"],
                ["run", "-d", "--name", "x", "--help", "sleep"],
                ["create", "--net", "none", "-h", "sleep", "1"], ["exec", "--help"],
            ] {
                let result = try pier.pier(arguments)
                #expect(result.status == 0, "\(arguments): \(result.stderr)")
                #expect(result.stdout.contains("USAGE: pier \(arguments[0])"), "\(arguments): \(result.stdout)")
            }
            for arguments in [["run", "--bogus", "sleep", "1"], ["create", "-Z", "sleep", "1"]] {
                let result = try pier.pier(arguments)
                #expect(result.status == 125, "\(arguments): \(result.status)")
                #expect(result.stderr.hasPrefix("pier: "), "\(result.stderr)")
                #expect(result.stderr.contains(arguments[1]), "\(result.stderr)")
                #expect(result.stderr.contains("See 'pier \(arguments[0]) --help'."), "\(result.stderr)")
            }
            #expect(try pier.containers().isEmpty)
            #expect(try pier.leftovers() == [])

            // The command's own options are its own.
            let echo = try pier.mustPier(["run", "--rm", "--net", "none", "echo", "--help", "-h", "--net"])
            #expect(echo.stdout == "--help -h --net\n")
            let explicit = try pier.mustPier(["run", "--rm", "--net", "none", "--", "echo", "-x"])
            #expect(explicit.stdout == "-x\n")
            let unknown = try pier.pier(["frobnicate"])
            #expect(unknown.status == 125)
            #expect(unknown.stderr.contains("'frobnicate' is not a pier command"), "\(unknown.stderr)")
            let version = try pier.mustPier(["--version"])
            #expect(version.stdout.hasPrefix("pier version "), "\(version.stdout)")
            #expect(try pier.leftovers() == [])
        }
    }

    /// Every subcommand answers `--help` with its usage (and `-h` the same).
    @Test func everySubcommandHasHelp() throws {
        let subcommands = [
            ["create"], ["start"], ["run"], ["exec"], ["stop"], ["restart"], ["kill"], ["rm"], ["ps"], ["inspect"],
            ["logs"], ["port"], ["check"], ["doctor"], ["trace"], ["gc"], ["network"], ["network", "ls"],
            ["network", "inspect"], ["plugin"], ["plugin", "add"], ["plugin", "del"], ["plugin", "check"],
            ["plugin", "gc"], ["plugin", "status"], ["plugin", "version"], ["agent"],
        ]
        let pier = builtProductsDirectory + "/pier"
        let top = try runCommand([pier, "--help"])
        #expect(top.status == 0)
        for subcommand in subcommands {
            for flag in ["--help", "-h"] {
                let result = try runCommand([pier] + subcommand + [flag])
                #expect(result.status == 0, "\(subcommand) \(flag): \(result.stderr)")
                #expect(
                    result.stdout.contains("USAGE: pier \(subcommand.joined(separator: " "))"),
                    "\(subcommand) \(flag): \(result.stdout)")
                #expect(result.stdout.contains("OVERVIEW: "), "\(subcommand): \(result.stdout)")
            }
            if subcommand.count == 1 {
                #expect(top.stdout.contains("  \(subcommand[0]) "), "pier --help does not list \(subcommand[0])")
            }
        }
    }

    /// Two networks that both ask for the default route (the shipped config copied): the first network's
    /// gateway gets it, CHECK agrees, and the result matches the kernel.
    @Test func twoDefaultGatewayNetworksGiveTheFirstOnesGateway() throws {
        try withPier { pier in
            let third = Int.random(in: 0...255)
            try pier.addNetwork("t231", subnet: "10.231.\(third).0/24", defaultGateway: true)
            try pier.addNetwork("t232", subnet: "10.232.\(third).0/24", defaultGateway: true)
            for (order, gateway) in [
                (["t231", "t232"], "10.231.\(third).1"), (["t232", "t231"], "10.232.\(third).1"),
            ] {
                let name = pier.name("gw\(order[0])")
                try pier.mustPier(["run", "-d", "--name", name, "--net", order[0], "--net", order[1], "sleep", "300"])
                let routes = try pier.mustPier(["exec", name, "ip", "-j", "route", "show", "default"]).stdout
                let decoded = try #require(
                    try JSONSerialization.jsonObject(with: Data(routes.utf8)) as? [[String: Any]])
                #expect(decoded.count == 1, "\(routes)")
                #expect(decoded.first?["gateway"] as? String == gateway, "\(routes)")
                #expect(decoded.first?["dev"] as? String == "eth0", "\(routes)")
                let check = try pier.pier(["check", name])
                #expect(check.status == 0, "\(check.stderr)")
                try pier.mustPier(["rm", "-f", name])
            }
            #expect(try pier.leftovers() == [])
        }
    }

    /// Without `pier` to choose (two ADDs by hand, as cnitool does), the second network's default route
    /// exists already through eth0: its ADD fails instead of reporting a route it did not install, and
    /// leaves no eth1 behind.
    @Test func aSecondDefaultRouteByHandIsRefusedNotClaimed() throws {
        try withPier { pier in
            let third = Int.random(in: 0...255)
            try pier.addNetwork("t242", subnet: "10.242.\(third).0/24", defaultGateway: true)
            try pier.addNetwork("t243", subnet: "10.243.\(third).0/24", defaultGateway: true)
            try withTestHosts(1) { hosts in
                let netns = hosts[0].path
                try pier.mustPier(["plugin", "add", "--net", "t242", "--netns", netns, "--ifname", "eth0"])
                let second = try pier.pier(["plugin", "add", "--net", "t243", "--netns", netns, "--ifname", "eth1"])
                #expect(second.status != 0, "\(second.stdout)")
                #expect(second.stderr.contains("already exists through another interface"), "\(second.stderr)")
                #expect(Set(try hosts[0].linkNames()) == ["lo", "eth0"])
                try pier.mustPier(["plugin", "del", "--net", "t243", "--netns", netns, "--ifname", "eth1"])
                try pier.mustPier(["plugin", "check", "--net", "t242", "--netns", netns, "--ifname", "eth0"])
                try pier.mustPier(["plugin", "del", "--net", "t242", "--netns", netns, "--ifname", "eth0"])
                #expect(try pier.leftovers() == [])
            }
        }
    }

    /// `--ip`/`--mac` on a network that cannot honour them are refused; where it can, they are applied,
    /// and an address another container holds is refused.
    @Test func fixedAddressAndMACAreHonouredOrRefused() throws {
        try withPier { pier in
            let third = Int.random(in: 0...255)
            try pier.addNetwork("t233", subnet: "10.233.\(third).0/24")
            for option in [["--ip", "10.233.\(third).50"], ["--mac", "c2:11:22:33:44:55"]] {
                let result = try pier.pier(
                    ["run", "-d", "--name", pier.name("nocap"), "--net", "t233"] + option + ["sleep", "300"])
                #expect(result.status == 125, "\(option): \(result.stdout)")
                #expect(result.stderr.contains("capability"), "\(result.stderr)")
                #expect(try pier.leftovers() == [])
            }

            try pier.addNetwork("t234", subnet: "10.234.\(third).0/24", capabilities: ["ips", "mac"])
            let fixed = pier.name("fixed")
            try pier.mustPier([
                "run", "-d", "--name", fixed, "--net", "t234", "--ip", "10.234.\(third).50", "--mac",
                "c2:11:22:33:44:55",
                "sleep", "300",
            ])
            let link = try pier.mustPier(["exec", fixed, "ip", "-j", "addr", "show", "eth0"]).stdout
            #expect(link.contains("\"10.234.\(third).50\""), "\(link)")
            #expect(link.contains("c2:11:22:33:44:55"), "\(link)")
            let clash = try pier.pier([
                "run", "-d", "--name", pier.name("clash"), "--net", "t234", "--ip", "10.234.\(third).50", "sleep",
                "300",
            ])
            #expect(clash.status != 0, "\(clash.stdout)")
            try pier.mustPier(["rm", "-f", fixed])
            #expect(try pier.leftovers() == [])
        }
    }

    /// A host server listening on the port: publishing it is refused ("address already in use") and the
    /// server keeps its traffic.
    @Test(.enabled(if: PierHarness.portmapBuilt, "portmap is not built"))
    func publishingAPortAHostServerListensOnIsRefused() throws {
        try withPier { pier in
            let third = Int.random(in: 0...255)
            try pier.addNetwork("t235", subnet: "10.235.\(third).0/24", portmap: true)
            let port = Int.random(in: 30001...32000)
            let server = Process()
            server.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            server.arguments = ["--net=\(pier.host.path)", "python3", "-m", "http.server", String(port)]
            server.standardOutput = FileHandle.nullDevice
            server.standardError = FileHandle.nullDevice
            try server.run()
            defer {
                // SIGKILL: the test runner's children may inherit SIGTERM as ignored.
                kill(server.processIdentifier, SIGKILL)
                server.waitUntilExit()
            }
            #expect(eventually { httpGet(from: pier.host, "http://127.0.0.1:\(port)/")?.contains("Directory") == true })
            let name = pier.name("hijack")
            let result = try pier.pier([
                "run", "-d", "--name", name, "--net", "t235", "-p", "\(port):80", "python3", "-m", "http.server", "80",
            ])
            #expect(result.status == 125)
            #expect(result.stderr.contains("address already in use"), "\(result.stderr)")
            #expect(try pier.leftovers() == [])
            #expect(httpGet(from: pier.host, "http://127.0.0.1:\(port)/")?.contains("Directory") == true)
        }
    }

    /// `rm` of a container whose namespace another joined: refused without -f; with -f, a warning names
    /// the one that breaks, and `exec` into it says why it fails.
    @Test func removingAContainerOthersJoinedIsRefusedOrWarned() throws {
        try withPier { pier in
            try pier.addNetwork("t236", subnet: "10.236.\(Int.random(in: 0...255)).0/24")
            let web = pier.name("web")
            let side = pier.name("side")
            try pier.mustPier(["run", "-d", "--name", web, "--net", "t236", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", side, "--net", "container:\(web)", "sleep", "300"])
            try pier.mustPier(["stop", "-t", "1", web])
            let refused = try pier.pier(["rm", web])
            #expect(refused.status == 125)
            #expect(refused.stderr.contains(side), "\(refused.stderr)")
            #expect(try pier.containers().count == 2)

            let forced = try pier.mustPier(["rm", "-f", web])
            #expect(forced.stderr.contains("warning") && forced.stderr.contains(side), "\(forced.stderr)")
            let exec = try pier.pier(["exec", side, "true"])
            #expect(exec.status == 125)
            #expect(exec.stderr.contains("network namespace"), "\(exec.stderr)")
            try pier.mustPier(["rm", "-f", side])

            // Removed together, nobody is left broken: no warning.
            let web2 = pier.name("web2")
            let side2 = pier.name("side2")
            try pier.mustPier(["run", "-d", "--name", web2, "--net", "t236", "sleep", "300"])
            try pier.mustPier(["run", "-d", "--name", side2, "--net", "container:\(web2)", "sleep", "300"])
            let together = try pier.mustPier(["rm", "-f", side2, web2])
            #expect(!together.stderr.contains("warning"), "\(together.stderr)")
            #expect(try pier.leftovers() == [])
        }
    }

    /// `trace` to a port nothing listens on is not healthy; a container whose interface was deleted is
    /// traced (broken, exit 1) rather than refused as a usage error, and `doctor` and `network inspect`
    /// name the missing interface.
    @Test func diagnosticsSeeARefusedPortAndADeletedInterface() throws {
        try withPier { pier in
            try pier.addNetwork("t239", subnet: "10.239.\(Int.random(in: 0...255)).0/24")
            let web = pier.name("web")
            let client = pier.name("client")
            try pier.mustPier(["run", "-d", "--name", web, "--net", "t239", "python3", "-m", "http.server", "8080"])
            try pier.mustPier(["run", "-d", "--name", client, "--net", "t239", "sleep", "300"])
            let address = try #require(try pier.address(of: web))
            #expect(eventually { httpGet(from: pier.host, "http://\(address):8080/") != nil })
            #expect(try pier.pier(["trace", client, "\(web):8080"]).status == 0)
            let refused = try pier.pier(["trace", client, "\(web):8081", "--json"])
            #expect(refused.status == 1, "\(refused.stdout)")
            #expect(refused.stdout.contains("refused"), "\(refused.stdout)")

            try pier.mustPier(["exec", web, "ip", "link", "del", "eth0"])
            let cut = try pier.pier(["trace", client, web, "--json", "--no-probe"])
            #expect(cut.status == 1, "\(cut.status) \(cut.stderr)")
            let doctor = try pier.pier([
                "doctor", "--json", "--skip-kernel-probes", "--store-dir", pier.directory + "/store",
            ])
            #expect(doctor.status == 1)
            #expect(doctor.stdout.contains("missing.interface"), "\(doctor.stdout)")
            let network = try pier.mustPier(["network", "inspect", "t239", "--json"]).stdout
            let report = try #require(try JSONSerialization.jsonObject(with: Data(network.utf8)) as? [String: Any])
            let attachments = report["attachments"] as? [[String: Any]] ?? []
            #expect(attachments.filter { $0["interfaceMissing"] as? Bool == true }.count == 1, "\(network)")
            #expect(try pier.mustPier(["network", "inspect", "t239"]).stdout.contains("interface gone"))
            try pier.mustPier(["rm", "-f", web, client])
            #expect(try pier.leftovers() == [])
        }
    }

    /// Every way `run`/`create`/`start` can fail leaves nothing behind: no record, namespace, veth, lease
    /// or cache entry.
    @Test func failingCommandsLeaveNothingHalfMade() throws {
        try withPier { pier in
            try pier.addNetwork("t240", subnet: "10.240.\(Int.random(in: 0...255)).0/24")
            let failures: [([String], Int32)] = [
                (["run", "--net", "t240", "--name", pier.name("f1"), "no-such-command-\(pier.tag)"], 127),
                (["run", "-d", "--net", "t240", "--name", pier.name("f2"), "-w", "/no/such/dir", "true"], 126),
                (["run", "--net", "t240", "--name", pier.name("f3"), "--env-file", "/no/such/file", "true"], 125),
                (["run", "--net", "t240", "--name", pier.name("f4"), "-p", "99999:80", "true"], 125),
                (["run", "--net", "t240", "--name", pier.name("f5"), "--ip", "10.240.0.9", "true"], 125),
                (["run", "-t", "--net", "t240", "--name", pier.name("f6"), "true"], 125),
                (["create", "--net", "t240", "--name", "bad name", "true"], 125),
                (["run", "--net", "t240", "--net", "t240", "--name", pier.name("f7"), "true"], 125),
                (["run", "--net", "t240", "--name", pier.name("f8"), "--expose", "1:2", "-P", "true"], 125),
                (["start", "no-such-\(pier.tag)"], 125),
            ]
            for (arguments, status) in failures {
                let result = try pier.pier(arguments)
                #expect(result.status == status, "\(arguments): \(result.status) \(result.stderr)")
                #expect(result.stderr.hasPrefix("pier: "), "\(arguments): \(result.stderr)")
                #expect(try pier.containers().isEmpty, "\(arguments)")
                #expect(try pier.leftovers() == [], "\(arguments)")
            }
        }
    }

    /// A `start` whose command cannot be started (recorded as started while the forked child enters the
    /// container) puts the record back as it was: still `created`, startable once the cause is gone.
    @Test func aFailedStartLeavesTheContainerCreated() throws {
        try withPier { pier in
            try pier.addNetwork("t242", subnet: "10.242.\(Int.random(in: 0...255)).0/24")
            // `start` fails with 126 naming `cause`, the container stays `created`, and `rm` leaves nothing.
            func expectFailedStart(_ name: String, naming cause: String) throws {
                let result = try pier.pier(["start", name])
                #expect(result.status == 126, "\(result.stderr)")
                #expect(result.stderr.contains(cause), "\(result.stderr)")
                let listed = try pier.containers().first { $0["name"] as? String == name }
                #expect(listed?["status"] as? String == "created", "\(String(describing: listed))")
                try pier.mustPier(["rm", "-f", name])
                #expect(try pier.leftovers() == [])
            }
            let name = pier.name("fs")
            try pier.mustPier(["create", "--net", "t242", "--name", name, "-w", "/no/such/dir", "true"])
            try expectFailedStart(name, naming: "/no/such/dir")

            // A log that cannot be opened fails the start too, before the forked child goes further.
            let logless = pier.name("fl")
            let id = try pier.mustPier(["create", "--net", "t242", "--name", logless, "true"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            try FileManager.default.createDirectory(
                atPath: pier.root + "/containers/\(id)/log", withIntermediateDirectories: true)
            try expectFailedStart(logless, naming: "/log")
        }
    }

    /// `inspect` writes an IPv6 published endpoint as `[address]:port`.
    @Test(.enabled(if: PierHarness.portmapBuilt, "portmap is not built"))
    func inspectBracketsIPv6Endpoints() throws {
        try withPier { pier in
            let hex = String(Int.random(in: 0x1000...0xffff), radix: 16)
            try pier.addNetwork("t241", subnet: "fd41:\(hex)::/64", portmap: true)
            let name = pier.name("v6")
            let port = Int.random(in: 34001...35000)
            try pier.mustPier(["run", "-d", "--name", name, "--net", "t241", "-p", "[::1]:\(port):80", "sleep", "300"])
            let text = try pier.mustPier(["inspect", name]).stdout
            #expect(text.contains("[::1]:\(port)"), "\(text)")
            #expect(text.contains("[fd41:\(hex)::"), "\(text)")
            #expect(try pier.mustPier(["port", name]).stdout == "80/tcp -> [::1]:\(port)\n")
            try pier.mustPier(["rm", "-f", name])
            #expect(try pier.leftovers() == [])
        }
    }

    /// `rm -f nosuch tmp1` removes tmp1 and reports nosuch, as Docker does.
    @Test func removeGoesOnPastAMissingName() throws {
        try withPier { pier in
            let tmp = pier.name("tmp1")
            try pier.mustPier(["create", "--name", tmp, "--net", "none", "sleep", "1"])
            let result = try pier.pier(["rm", "-f", "nosuch-\(pier.tag)", tmp])
            #expect(result.status != 0)
            #expect(result.stderr.contains("no such container: nosuch-\(pier.tag)"), "\(result.stderr)")
            #expect(result.stdout == "\(tmp)\n")
            #expect(try pier.containers().isEmpty)
            #expect(try pier.leftovers() == [])
        }
    }

    /// `ps` lists containers in the order they were created, every time.
    @Test func psListsInCreationOrder() throws {
        try withPier { pier in
            let names = ["d", "c", "b", "a", "e"].map { pier.name("order-\($0)") }
            for name in names { try pier.mustPier(["create", "--name", name, "--net", "none", "sleep", "1"]) }
            for _ in 0..<3 {
                #expect(try pier.containers().map { $0["name"] as? String } == names)
            }
            try pier.mustPier(["rm"] + names)
            #expect(try pier.leftovers() == [])
        }
    }
}

/// The everyday commands a Docker user reaches for.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct EverydayCommandTests {
    func container(_ pier: PierHarness, _ name: String) throws -> [String: Any]? {
        try pier.containers().first { $0["name"] as? String == name }
    }

    @Test func detachedExitCodesLogsKillAndRestart() throws {
        try withPier { pier in
            let quits = pier.name("quits")
            let quitsID = try pier.mustPier([
                "run", "-d", "--name", quits, "--net", "none", "sh", "-c", "echo one; echo two; echo three; exit 3",
            ]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(eventually { (try? container(pier, quits))?["exitCode"] as? Int == 3 })
            #expect(try container(pier, quits)?["status"] as? String == "exited")
            #expect(try pier.mustPier(["ps", "-a"]).stdout.contains("exited (3)"))
            // Without -a, as in Docker, only running containers.
            #expect(!(try pier.mustPier(["ps"]).stdout.contains(quits)))
            #expect(try pier.mustPier(["ps", "-aq"]).stdout == "\(String(quitsID.prefix(12)))\n")
            #expect(try pier.mustPier(["inspect", quits]).stdout.contains("exited (3)"))
            #expect(try pier.mustPier(["logs", "--tail", "2", quits]).stdout == "two\nthree\n")
            #expect(try pier.mustPier(["logs", "-n", "0", quits]).stdout == "")
            // Output that is not UTF-8 comes back byte for byte (no replacement characters).
            let binary = pier.name("binary")
            try pier.mustPier(["run", "-d", "--name", binary, "--net", "none", "printf", "a\\377b"])
            #expect(eventually { (try? container(pier, binary))?["exitCode"] as? Int == 0 })
            // With --tail too; a last line without its newline is one line, and gets none added.
            for tail in [[], ["--tail", "1"]] {
                let dumped = try runCommand([
                    "sh", "-c",
                    pier.command(["logs"] + tail + [binary]).map { "'\($0)'" }.joined(separator: " ")
                        + " | od -An -tx1",
                ])
                #expect(dumped.stdout.split(separator: " ").map(String.init) == ["61", "ff", "62\n"], "\(tail)")
            }

            let sleeper = pier.name("sleeper")
            try pier.mustPier(["run", "-d", "--name", sleeper, "--net", "none", "sleep", "300"])
            try pier.mustPier(["kill", "-s", "TERM", sleeper])
            #expect(eventually { (try? container(pier, sleeper))?["exitCode"] as? Int == 143 })
            try pier.mustPier(["restart", "-t", "1", sleeper])
            #expect(try container(pier, sleeper)?["status"] as? String == "running")
            try pier.mustPier(["kill", sleeper])
            #expect(eventually { (try? container(pier, sleeper))?["exitCode"] as? Int == 137 })
            #expect(try pier.pier(["kill", "-s", "NOSUCH", sleeper]).status == 125)

            // `logs -f` follows until the container stops.
            let talker = pier.name("talker")
            try pier.mustPier([
                "run", "-d", "--name", talker, "--net", "none", "sh", "-c", "echo first; sleep 1; echo second",
            ])
            #expect(try pier.mustPier(["logs", "-f", talker]).stdout == "first\nsecond\n")
            try pier.mustPier(["rm", quits, sleeper, talker, binary])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test func environmentWorkdirAndStdin() throws {
        try withPier { pier in
            let envFile = pier.directory + "/env"
            try "# comment\nFROM_FILE=file\nSHARED=file\n".write(toFile: envFile, atomically: true, encoding: .utf8)
            let result = try pier.mustPier([
                "run", "--rm", "--net", "none", "--env-file", envFile, "-e", "SHARED=flag", "-e", "PATH", "-w", "/tmp",
                "sh", "-c", "echo $FROM_FILE $SHARED; pwd",
            ])
            #expect(result.stdout == "file flag\n/tmp\n")
            // Without -i stdin is empty; with -i it is pier's.
            #expect(try pier.mustPier(["run", "--rm", "--net", "none", "cat"]).stdout == "")
            let interactive = try runCommand(
                pier.command(["run", "--rm", "-i", "--net", "none", "cat"]), stdin: "typed\n")
            #expect(interactive.stdout == "typed\n")
            let tty = try pier.pier(["run", "--rm", "-t", "--net", "none", "true"])
            #expect(tty.status == 125 && tty.stderr.contains("not a TTY"), "\(tty.stderr)")

            let name = pier.name("envexec")
            try pier.mustPier(["run", "-d", "--name", name, "--net", "none", "-e", "A=1", "sleep", "300"])
            let exec = try pier.mustPier(["exec", "-e", "B=2", "-w", "/", name, "sh", "-c", "echo $A$B; pwd"])
            #expect(exec.stdout == "12\n/\n")
            try pier.mustPier(["rm", "-f", name])
            #expect(try pier.leftovers() == [])
        }
    }

    @Test(.enabled(if: PierHarness.portmapBuilt, "portmap is not built"))
    func randomHostPortsRangesAndPort() throws {
        try withPier { pier in
            try pier.addNetwork("t238", subnet: "10.238.\(Int.random(in: 0...255)).0/24", portmap: true)
            let name = pier.name("ports")
            let base = Int.random(in: 33000...34000)
            try pier.mustPier([
                "run", "-d", "--name", name, "--net", "t238", "-p", "8080", "-p", "\(base)-\(base + 1):80-81",
                "--expose", "8082/udp", "-P", "python3", "-m", "http.server", "8080",
            ])
            let ports = try pier.mustPier(["port", name]).stdout.split(separator: "\n").map(String.init)
            #expect(ports.count == 4, "\(ports)")
            #expect(ports.contains { $0.hasPrefix("8082/udp -> 0.0.0.0:") }, "\(ports)")
            #expect(ports.contains("80/tcp -> 0.0.0.0:\(base)"), "\(ports)")
            #expect(ports.contains("81/tcp -> 0.0.0.0:\(base + 1)"), "\(ports)")
            let random = try #require(ports.first { $0.hasPrefix("8080/tcp -> 0.0.0.0:") })
            let hostPort = try #require(Int(random.split(separator: ":").last ?? ""))
            #expect(try pier.mustPier(["port", name, "8080/tcp"]).stdout == "0.0.0.0:\(hostPort)\n")
            let address = try #require(try pier.address(of: name))
            let gateway = address.split(separator: ".").dropLast().joined(separator: ".") + ".1"
            #expect(
                eventually { httpGet(from: pier.host, "http://\(gateway):\(hostPort)/")?.contains("Directory") == true }
            )
            #expect(try pier.pier(["port", name, "9999"]).status == 125)
            let mismatch = try pier.pier(["run", "--rm", "--net", "t238", "-p", "1000-1002:80-81", "true"])
            #expect(mismatch.status == 125 && mismatch.stderr.contains("same size"), "\(mismatch.stderr)")
            try pier.mustPier(["rm", "-f", name])
            #expect(try pier.leftovers() == [])
        }
    }
}
