import CNI
import Foundation
import PierTestSupport
import Testing

@testable import Runtime

struct CapabilityArgsTests {
    func mapping(_ text: String) throws -> String {
        try CapabilityArgs.portMapping(text).encodedString
    }

    @Test func publishSpecsBecomePortMappings() throws {
        #expect(try mapping("8080:80") == #"{"hostPort":8080,"containerPort":80,"protocol":"tcp"}"#)
        #expect(try mapping("53:53/udp") == #"{"hostPort":53,"containerPort":53,"protocol":"udp"}"#)
        #expect(
            try mapping("127.0.0.1:8080:80")
                == #"{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}"#)
        #expect(
            try mapping("[::1]:8080:80/sctp")
                == #"{"hostPort":8080,"containerPort":80,"protocol":"sctp","hostIP":"::1"}"#)
        for bad in ["80", "0:80", "8080:70000", "1.2.3.4:1:2:3", "8080:80/icmp", "nothost:80:80"] {
            #expect(throws: RuntimeError.self, "\(bad)") { try mapping(bad) }
        }
    }

    @Test func ipsAndMacAreValidated() throws {
        let object = try CapabilityArgs.build(ports: [], ips: ["10.1.0.5/24"], mac: "c2:11:22:33:44:55")
        #expect(JSONValue.object(object).encodedString == #"{"ips":["10.1.0.5/24"],"mac":"c2:11:22:33:44:55"}"#)
        #expect(throws: RuntimeError.self) { try CapabilityArgs.build(ports: [], ips: ["10.1.0"], mac: nil) }
        #expect(throws: RuntimeError.self) { try CapabilityArgs.build(ports: [], ips: [], mac: "c2:11") }
        #expect(try CapabilityArgs.build(ports: [], ips: [], mac: nil).isEmpty)
    }
}

struct IdentityTests {
    @Test func sha512MatchesKnownVectors() {
        #expect(
            SHA512.hex(SHA512.hash(Array("abc".utf8)))
                == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                + "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
        #expect(
            SHA512.hex(SHA512.hash([]))
                == "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
                + "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
        // Two blocks: 112 bytes of padding boundary.
        let long = Array(repeating: UInt8(ascii: "a"), count: 200)
        #expect(SHA512.hash(long).count == 64)
    }

    @Test func cnitoolContainerIDIsPrefixedTwentyHexDigits() {
        let id = cnitoolContainerID(netns: "/var/run/netns/test")
        #expect(id.hasPrefix("cnitool-"))
        #expect(id.count == 28)
        #expect(id == "cnitool-" + SHA512.hex(SHA512.hash(Array("/var/run/netns/test".utf8))).prefix(20))
    }

    @Test func containerIDsAreDockerLike() {
        let id = ContainerID.generate()
        #expect(id.count == 64 && id.allSatisfy(\.isHexDigit))
        #expect(id != ContainerID.generate())
        #expect((try? ContainerID.validateName("web-1.a_b")) != nil)
        for bad in ["", "-x", "a/b", "a b", String(repeating: "x", count: 65)] {
            #expect(throws: RuntimeError.self) { try ContainerID.validateName(bad) }
        }
    }
}

struct NetworkModeTests {
    @Test func netOptionsParse() throws {
        #expect(try ContainerManager.parseNetworkMode([]) == .networks(["pier"]))
        #expect(try ContainerManager.parseNetworkMode(["a", "b"]) == .networks(["a", "b"]))
        #expect(try ContainerManager.parseNetworkMode(["host"]) == .host)
        #expect(try ContainerManager.parseNetworkMode(["none"]) == ContainerRecord.NetworkMode.none)
        #expect(try ContainerManager.parseNetworkMode(["container:web"]) == .container("web"))
        for bad in [["host", "a"], ["a", "a"], ["container:"]] {
            #expect(throws: RuntimeError.self) { try ContainerManager.parseNetworkMode(bad) }
        }
    }

    @Test func initArgumentsRoundTrip() throws {
        var spec = InitSpec(command: ["sh", "-c", "echo --netns"])
        spec.netns = "/run/netns/x"
        spec.hostname = "web"
        spec.rootfs = "/srv/root"
        spec.binds = [("/a/resolv.conf", "etc/resolv.conf")]
        spec.reportDescriptor = 3
        spec.pidFile = "/run/pier/c/pid"
        spec.environment = ["A=1", "B=x=y"]
        spec.workdir = "/srv"
        spec.exitFile = "/run/pier/c/exit"
        #expect(try InitSpec(arguments: spec.arguments) == spec)
        #expect(throws: RuntimeError.self) { try InitSpec(arguments: ["--netns", "/x", "--"]) }
    }
}

struct ConfigStoreTests {
    @Test func conflistsWinInLexicalOrderThenLegacyFiles() throws {
        let directory = NSTemporaryDirectory() + "pier-conf-\(uniqueTag())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        try write("20-b.conflist", #"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"second"}]}"#)
        try write("10-a.conflist", #"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"first"}]}"#)
        try write("05-n.conf", #"{"cniVersion":"0.4.0","name":"n","type":"legacy"}"#)
        try write("30-old.conf", #"{"cniVersion":"0.4.0","name":"old","type":"legacy"}"#)
        try write("40-broken.conflist", "{")
        try write("README", "not a config")
        let store = NetworkConfigStore(directory: directory)
        #expect(try store.load(network: "n").plugins.map(\.type) == ["first"])
        let old = try store.load(network: "old")
        #expect(old.plugins.map(\.type) == ["legacy"])
        #expect(old.cniVersion == "0.4.0")
        #expect(store.networkNames() == ["n", "old"])
        do {
            _ = try store.load(network: "x")
            Issue.record("expected unknown network")
        } catch {
            #expect("\(error)".contains("known networks: n, old"))
        }
    }

    @Test func versionSelectionTakesTheNewestSupported() throws {
        let list = try NetworkConfigList(
            bytes: Array(
                #"{"cniVersion":"0.4.0","cniVersions":["1.0.0","1.1.0","9.0.0"],"name":"v","plugins":[]}"#.utf8))
        #expect(list.cniVersion == "1.1.0")
    }
}

struct StateStoreTests {
    @Test func recordsRoundTripAndResolveByNameOrIDPrefix() throws {
        let root = NSTemporaryDirectory() + "pier-state-\(uniqueTag())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = StateStore(root: root)
        var record = ContainerRecord(
            id: ContainerID.generate(), name: "web", command: ["sleep", "1"], networkMode: .host)
        record.attachments = [.init(network: "pier", ifName: "eth0", capabilityArgs: #"{"mac":"x"}"#)]
        try store.save(record)
        #expect(store.load(id: record.id) == record)
        #expect(try store.find("web").id == record.id)
        #expect(try store.find(String(record.id.prefix(8))).id == record.id)
        #expect(throws: RuntimeError.self) { try store.find("nope") }
        let mode =
            try FileManager.default.attributesOfItem(atPath: root + "/containers/\(record.id)/state.json")[
                .posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(record.request(for: record.attachments[0]).capabilityArgs["mac"] == .string("x"))
        store.remove(id: record.id)
        #expect(store.all().isEmpty)
    }

    static func record(_ name: String, mode: ContainerRecord.NetworkMode = .host) -> ContainerRecord {
        ContainerRecord(id: ContainerID.generate(), name: name, command: ["sleep", "1"], networkMode: mode)
    }

    /// Names resolve through `names/`, joiners through `joined/`; a store written before the indexes
    /// existed gets them from its first save, and an index entry whose record is gone finds nothing.
    /// Records and process options as earlier versions wrote them (Foundation's pretty-printed `Codable`
    /// form) load, and every field survives a save and a load.
    @Test func recordsWrittenByEarlierVersionsLoad() throws {
        let root = NSTemporaryDirectory() + "pier-state-\(uniqueTag())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = StateStore(root: root)
        let id = "8c7338556beb2c8dd1dbd6ca935a028e3d49d9af6f4f86afd5f306e25b8b5afe"
        try FileManager.default.createDirectory(atPath: store.directory(of: id), withIntermediateDirectories: true)
        let earlier = """
            {
              "attachments" : [
                {
                  "addresses" : [
                    "10.161.0.135\\/16"
                  ],
                  "capabilityArgs" : "{\\"portMappings\\":[{\\"hostPort\\":18999,\\"containerPort\\":80}]}",
                  "cniArgs" : [

                  ],
                  "ifName" : "eth0",
                  "network" : "bench-e2e"
                }
              ],
              "autoRemove" : false,
              "command" : [
                "\\/bin\\/busybox",
                "httpd"
              ],
              "created" : "2026-12-05T00:02:59.514Z",
              "detached" : true,
              "id" : "\(id)",
              "name" : "oldfmt",
              "netnsPath" : "\\/run\\/netns\\/pier-oldfmt",
              "networkMode" : {
                "networks" : {
                  "_0" : [
                    "bench-e2e"
                  ]
                }
              },
              "ownsNetns" : true,
              "pid" : 4242,
              "pidStartTime" : 2920021,
              "rootfs" : "\\/tmp\\/root",
              "status" : "started"
            }
            """
        try earlier.write(toFile: store.directory(of: id) + "/state.json", atomically: true, encoding: .utf8)
        try #"{"environment":["A=b"],"workdir":"\/","interactive":false,"tty":false,"dnsServers":["10.0.0.1"]}"#
            .write(toFile: store.directory(of: id) + "/process.json", atomically: true, encoding: .utf8)
        var record = try #require(store.load(id: id))
        #expect(record.name == "oldfmt" && record.status == .started && record.detached && record.ownsNetns)
        #expect(record.command == ["/bin/busybox", "httpd"] && record.networkMode == .networks(["bench-e2e"]))
        #expect(record.netnsPath == "/run/netns/pier-oldfmt" && record.rootfs == "/tmp/root")
        #expect(record.pid == 4242 && record.pidStartTime == 2_920_021 && record.exitCode == nil)
        #expect(
            record.attachments == [
                NetworkAttachmentRecord(
                    network: "bench-e2e", ifName: "eth0",
                    capabilityArgs: #"{"portMappings":[{"hostPort":18999,"containerPort":80}]}"#,
                    addresses: ["10.161.0.135/16"])
            ])
        var process = store.loadProcess(of: id)
        #expect(process.environment == ["A=b"] && process.workdir == "/" && process.dnsServers == ["10.0.0.1"])
        #expect(process.dnsSearch == nil && !process.tty)

        // Every field, every network mode, through a save and a load.
        for mode: ContainerRecord.NetworkMode in [.none, .host, .container("other"), .networks(["a", "b"])] {
            record.networkMode = mode
            record.exitCode = 3
            record.ownerPID = 77
            record.attachments[0].cniArgs = [["K", "V"]]
            try store.save(record)
            #expect(store.load(id: id) == record)
        }
        process.dnsSearch = ["example"]
        process.dnsOptions = ["ndots:2"]
        process.interactive = true
        try store.saveProcess(process, of: id)
        #expect(store.loadProcess(of: id) == process)
    }

    @Test func indexesFindOneContainerWithoutReadingAll() throws {
        let root = NSTemporaryDirectory() + "pier-state-\(uniqueTag())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = StateStore(root: root)
        // An older store: a record and no indexes.
        var old = Self.record("old")
        old.netnsPath = "/run/netns/pier-old"
        old.ownsNetns = true
        try FileManager.default.createDirectory(atPath: store.directory(of: old.id), withIntermediateDirectories: true)
        try Data(old.stateJSON.encodedBytes).write(to: URL(fileURLWithPath: root + "/containers/\(old.id)/state.json"))
        #expect(!store.hasIndexes)
        #expect(try store.find("old").id == old.id)

        var joiner = Self.record("joiner", mode: .container("old"))
        joiner.netnsPath = old.netnsPath
        try store.save(joiner)
        #expect(store.hasIndexes)
        #expect(store.record(named: "old")?.id == old.id)
        #expect(store.record(named: "joiner")?.id == joiner.id)
        #expect(store.joiners(of: "/run/netns/pier-old").map(\.id) == [joiner.id])
        #expect(try store.find(joiner.id).name == "joiner")
        #expect(try store.find(String(joiner.id.prefix(5))).name == "joiner")
        #expect(store.record(named: "../containers") == nil)

        store.remove(id: joiner.id)
        #expect(store.record(named: "joiner") == nil)
        #expect(store.joiners(of: "/run/netns/pier-old").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: root + "/names/joiner"))
        // A name entry left by a `pier` killed before it wrote the record names nobody.
        try FileManager.default.createSymbolicLink(atPath: root + "/names/ghost", withDestinationPath: joiner.id)
        #expect(store.record(named: "ghost") == nil)
        #expect(throws: RuntimeError.self) { try store.find("ghost") }
        let ghost = Self.record("ghost")
        try store.save(ghost)
        #expect(try store.find("ghost").id == ghost.id)
    }

    /// `ps` reads one journal: the last line of a container wins, removals drop it, compaction keeps it
    /// bounded, and a stale mark (a `pier` that died mid-change) or another boot's listing is rebuilt
    /// from the records.
    @Test func listingFollowsEveryRecordChange() throws {
        let root = NSTemporaryDirectory() + "pier-state-\(uniqueTag())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = StateStore(root: root)
        var first = Self.record("first")
        first.command = ["sh", "-c", "echo a\tb\\n\u{1F}"]
        try store.save(first)
        var second = Self.record("second")
        try store.save(second)
        second.status = .started
        second.pid = 1
        second.pidStartTime = 7
        second.detached = true
        second.attachments = [.init(network: "pier", ifName: "eth0", addresses: ["10.1.0.2/24", "fd00::2/64"])]
        try store.save(second)
        #expect(store.summaries() == [ContainerSummary(first), ContainerSummary(second)])
        #expect(store.summaries()[0].command == first.command)
        #expect(store.summaries()[1].addresses == ["10.1.0.2/24", "fd00::2/64"])

        store.remove(id: first.id)
        #expect(store.summaries().map(\.name) == ["second"])
        // A change is one appended line: the same file, grown by that line (not rewritten).
        let before = try FileManager.default.attributesOfItem(atPath: root + "/listing")
        second.pid = 2
        try store.save(second)
        let after = try FileManager.default.attributesOfItem(atPath: root + "/listing")
        #expect(after[.systemFileNumber] as? Int == before[.systemFileNumber] as? Int)
        #expect(
            (after[.size] as? Int ?? 0) - (before[.size] as? Int ?? 0) == ContainerSummary(second).line.utf8.count + 1)
        // Many changes: the journal is compacted and still says the same.
        for pid in 2..<1000 {
            second.pid = Int32(pid)
            try store.save(second)
        }
        let size = try #require(FileManager.default.attributesOfItem(atPath: root + "/listing")[.size] as? Int)
        #expect(size < 20 * 1024)
        #expect(store.summaries() == [ContainerSummary(second)])

        // A change the listing never got, behind a stale mark: rebuilt from the records.
        var third = Self.record("third")
        try store.save(third)
        third.status = .created
        let data = Data(third.stateJSON.encodedBytes)
        try data.write(to: URL(fileURLWithPath: root + "/containers/\(third.id)/state.json"))
        FileManager.default.createFile(atPath: root + "/listing.pending", contents: Data("1".utf8))
        #expect(store.summaries().map(\.status) == [.started, .created])
        #expect(try String(contentsOfFile: root + "/listing.pending", encoding: .utf8) == "0")
        // The same with the mark an earlier version left (a file of its own).
        third.status = .removing
        try Data(third.stateJSON.encodedBytes).write(
            to: URL(fileURLWithPath: root + "/containers/\(third.id)/state.json"))
        FileManager.default.createFile(atPath: root + "/listing.stale", contents: nil)
        #expect(store.summaries().map(\.status) == [.started, .removing])
        #expect(!FileManager.default.fileExists(atPath: root + "/listing.stale"))
        third.status = .created
        try store.save(third)
        // Another boot's listing is not trusted either.
        let text = try String(contentsOfFile: root + "/listing", encoding: .utf8)
        try text.replacingOccurrences(of: StateStore.bootID(), with: "another-boot").write(
            toFile: root + "/listing", atomically: true, encoding: .utf8)
        third.status = .removing
        try store.save(third)
        #expect(store.summaries().map(\.status) == [.started, .removing])
    }

    @Test func deadOrRecycledProcessesAreNotRunning() throws {
        let own = getpid()
        let start = try #require(ProcessState.stat(own)?.startTime)
        #expect(ProcessState.isAlive(pid: own, startTime: start))
        #expect(!ProcessState.isAlive(pid: own, startTime: start + 1))
        #expect(ProcessState.stat(Int32.max) == nil)
    }
}

struct NetworkChoiceTests {
    static func list(_ name: String, defaultGateway: Bool?, capabilities: String = "{}") throws -> NetworkConfigList {
        let flag = defaultGateway.map { ",\"isDefaultGateway\":\($0)" } ?? ""
        let text =
            #"{"cniVersion":"1.1.0","name":""# + name
            + #"","plugins":[{"type":"bridge","capabilities":"# + capabilities + flag + "}]}"
        return try NetworkConfigList(bytes: Array(text.utf8))
    }

    static func wantsDefault(_ list: NetworkConfigList) -> Bool? {
        list.plugins[0].raw["isDefaultGateway"]?.boolValue
    }

    /// Only the first network that asks for the default route keeps `isDefaultGateway`.
    @Test func onlyTheFirstDefaultGatewayNetworkKeepsIt() throws {
        let lists = try [
            Self.list("a", defaultGateway: nil), Self.list("b", defaultGateway: true),
            Self.list("c", defaultGateway: true), Self.list("d", defaultGateway: false),
        ]
        let chosen = ContainerManager.oneDefaultGateway(lists)
        #expect(chosen.map(\.name) == ["a", "b", "c", "d"])
        #expect(chosen.map(Self.wantsDefault) == [nil, true, false, false])
        // The rewritten list is what gets cached: it parses as the same network.
        #expect(chosen[2].plugins.map(\.type) == ["bridge"])
        #expect(ContainerManager.oneDefaultGateway([lists[1]]).map(Self.wantsDefault) == [true])
    }

    /// `--ip`, `--mac` and `-p` need the capability in the first network's config.
    @Test func capabilityOptionsNeedTheCapability() throws {
        let bare = try Self.list("bare", defaultGateway: nil)
        let capable = try Self.list("capable", defaultGateway: nil, capabilities: #"{"ips":true,"mac":true}"#)
        var options = CreateOptions(command: ["true"])
        try ContainerManager.requireCapabilities(options, of: bare)
        options.ips = ["10.0.0.5"]
        #expect(throws: RuntimeError.self) { try ContainerManager.requireCapabilities(options, of: bare) }
        try ContainerManager.requireCapabilities(options, of: capable)
        options.mac = "c2:11:22:33:44:55"
        try ContainerManager.requireCapabilities(options, of: capable)
        options.ports = ["8080:80"]
        do {
            try ContainerManager.requireCapabilities(options, of: capable)
            Issue.record("-p without portMappings was accepted")
        } catch {
            #expect("\(error)".contains("\"portMappings\" capability"), "\(error)")
        }
    }
}
