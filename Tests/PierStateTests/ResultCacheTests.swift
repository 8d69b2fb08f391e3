import CNI
import PierState
import Testing

@Suite struct ResultCacheTests {
    /// An entry as libcni writes it (`cachedInfo`, fields in Go's declaration order, `config`
    /// as padded standard base64 of the conflist).
    static let conflist = #"{"cniVersion":"1.0.0","name":"t1","plugins":[{"type":"bridge","bridge":"t1br"}]}"#
    static let libcniEntry =
        #"{"kind":"cniCacheV1","containerId":"cid1","config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoidDEiLCJwbHVnaW5zIjpbeyJ0eXBlIjoiYnJpZGdlIiwiYnJpZGdlIjoidDFiciJ9XX0=","ifName":"eth0","networkName":"t1","netns":"/run/netns/c1","cniArgs":[["IgnoreUnknown","1"],["K","V"]],"capabilityArgs":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]},"result":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.2/24"}]}}"#

    @Test func decodesWhatLibcniWritesAndWritesItBack() throws {
        let entry = try #require(ResultCacheEntry(decoding: Array(Self.libcniEntry.utf8)))
        #expect(entry.networkName == "t1")
        #expect(entry.containerID == "cid1")
        #expect(entry.ifName == "eth0")
        #expect(entry.netns == "/run/netns/c1")
        #expect(entry.cniArgs.map { [$0.0, $0.1] } == [["IgnoreUnknown", "1"], ["K", "V"]])
        #expect(entry.capabilityArgs["portMappings"]?.arrayValue?.count == 1)
        #expect(entry.config == Array(Self.conflist.utf8))
        #expect(entry.result?["ips"]?.arrayValue?.first?["address"]?.stringValue == "10.1.0.2/24")
        // Same keys in the same order, so either side reads the other's entries.
        #expect(String(decoding: entry.encoded(), as: UTF8.self) == Self.libcniEntry)
        #expect(ResultCacheEntry(decoding: entry.encoded()) == entry)
    }

    /// Go's `omitempty`: netns, cniArgs and capabilityArgs are left out when empty.
    @Test func emptyOptionalFieldsAreLeftOut() throws {
        let entry = ResultCacheEntry(
            networkName: "n", containerID: "c", ifName: "eth0", config: [],
            result: .object(["cniVersion": .string("1.0.0")]))
        let object = try #require(try JSONValue(parsing: entry.encoded()).objectValue)
        #expect(object.entries.map(\.key) == ["kind", "containerId", "config", "ifName", "networkName", "result"])
        #expect(object["config"]?.stringValue == "")
        #expect(ResultCacheEntry(decoding: entry.encoded()) == entry)
    }

    @Test func configBase64RoundTripsEveryPaddingLength() throws {
        for text in ["", "a", "ab", "abc", "abcd", Self.conflist] {
            let entry = ResultCacheEntry(
                networkName: "n", containerID: "c", ifName: "eth0", config: Array(text.utf8), result: nil)
            #expect(ResultCacheEntry(decoding: entry.encoded())?.config == Array(text.utf8), "\(text)")
        }
        func config(_ encoded: String) -> [UInt8]? {
            let text = #"{"kind":"cniCacheV1","containerId":"c","config":"\#(encoded)","ifName":"e","networkName":"n"}"#
            return ResultCacheEntry(decoding: Array(text.utf8))?.config
        }
        #expect(config("YWI=") == Array("ab".utf8))
        #expect(config("YQ==") == Array("a".utf8))
        // Not base64: the entry still names its attachment, with no config.
        #expect(config("YQ") == [])
        #expect(config("Y=Q=") == [])
        #expect(config("!!!!") == [])
    }

    @Test func rejectsWhatIsNotAnEntry() {
        for text in [
            "", "{", "[]", #"{"kind":"other","containerId":"c","ifName":"e","networkName":"n"}"#,
            #"{"kind":"cniCacheV1","ifName":"e","networkName":"n"}"#,
        ] {
            #expect(ResultCacheEntry(decoding: Array(text.utf8)) == nil, "\(text)")
        }
    }

    @Test func directoryListsEntriesAndSkipsTemporaries() throws {
        let dir = try ScratchDirectory()
        let cache = ResultCacheDirectory(cacheDirectory: dir.path)
        #expect(cache.directory == dir.path + "/results")
        let path = cache.path(network: "t1", containerID: "cid1", ifName: "eth0")
        #expect(path == dir.path + "/results/t1-cid1-eth0")
        try dir.write("results/t1-cid1-eth0", Self.libcniEntry)
        try dir.write("results/t1-cid1-eth0.tmp-123", Self.libcniEntry)
        try dir.write("results/" + FileSystem.temporaryPrefix + "9-x", Self.libcniEntry)
        try dir.write("results/garbage", "{")
        #expect(cache.all().map(\.path) == [path])
        #expect(cache.read(network: "t1", containerID: "cid1", ifName: "eth0")?.netns == "/run/netns/c1")
        #expect(cache.read(network: "t1", containerID: "other", ifName: "eth0") == nil)
        #expect(FileSystem.siblingTemporaryPath(for: path).hasPrefix(path + FileSystem.siblingTemporaryMarker))
    }

    @Test func stateLayoutPaths() {
        let layout = StateLayout(root: "/r")
        #expect(layout.lockPath == "/r/lock")
        #expect(layout.recordPath(id: "abc") == "/r/containers/abc/state.json")
        #expect(layout.pidPath(id: "abc") == "/r/containers/abc/pid")
        #expect(layout.logPath(id: "abc") == "/r/containers/abc/log")
        #expect(FileSystem.temporaryWriter(of: "state.json.tmp-4242") == 4242)
        #expect(FileSystem.temporaryWriter(of: "state.json") == nil)
        #expect(["log", "pid", "state.json.tmp-1"].allSatisfy(StateLayout.isAuxiliaryFile))
        #expect(!StateLayout.isAuxiliaryFile("state.json"))
        #expect(DefaultPaths.leaseDirectory == DefaultPaths.cacheDirectory + "/networks")
    }
}
