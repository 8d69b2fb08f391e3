import CNI
import PierState
import Testing

@Suite struct ConfigDirectoryTests {
    func list(_ name: String, type: String) -> String {
        #"{"cniVersion":"1.0.0","name":"\#(name)","plugins":[{"type":"\#(type)"}]}"#
    }

    func single(_ name: String, type: String, version: String? = "0.4.0") -> String {
        #"{"# + (version.map { #""cniVersion":"\#($0)","# } ?? "") + #""name":"\#(name)","type":"\#(type)"}"#
    }

    /// libcni searches every conflist before any `.conf`, so a conflist wins its name even when a
    /// `.conf` of the same name sorts first.
    @Test func conflistBeatsAConfThatSortsFirst() throws {
        let dir = try ScratchDirectory()
        try dir.write("00-web.conf", single("web", type: "from-conf"))
        try dir.write("99-web.conflist", list("web", type: "from-conflist"))
        let configs = ConfigDirectory(path: dir.path)
        let entry = try #require(configs.entry(network: "web"))
        #expect(entry.path == dir.path + "/99-web.conflist")
        #expect(entry.list?.plugins.map(\.type) == ["from-conflist"])
        #expect(configs.entries().map(\.path) == [dir.path + "/99-web.conflist", dir.path + "/00-web.conf"])
        #expect(configs.networks().map(\.path) == [dir.path + "/99-web.conflist"])
    }

    @Test func conflistsInByteOrderThenConfAndJSONSortedTogether() throws {
        let dir = try ScratchDirectory()
        try dir.write("20-b.conflist", list("n", type: "second"))
        try dir.write("10-a.conflist", list("n", type: "first"))
        try dir.write("30-x.json", single("x", type: "json"))
        try dir.write("20-x.conf", single("x", type: "conf"))
        try dir.write("B-upper.conflist", list("upper", type: "u"))
        try dir.write("a-lower.conflist", list("lower", type: "l"))
        let configs = ConfigDirectory(path: dir.path)
        #expect(configs.entry(network: "n")?.list?.plugins.map(\.type) == ["first"])
        #expect(configs.entry(network: "x")?.list?.plugins.map(\.type) == ["conf"])
        // Byte order: uppercase before lowercase, as Go's sort.Strings.
        #expect(configs.networkNames() == ["n", "upper", "lower", "x"])
    }

    /// `.conf` and `.json` hold one plugin object: it becomes a one-plugin list named and
    /// versioned after it, with the plugin's keys kept (libcni's ConfListFromConf).
    @Test func singlePluginFilesAreWrappedIntoLists() throws {
        let dir = try ScratchDirectory()
        try dir.write("10-old.conf", #"{"cniVersion":"0.4.0","name":"old","type":"bridge","bridge":"br9"}"#)
        try dir.write("20-j.json", single("j", type: "host", version: nil))
        let configs = ConfigDirectory(path: dir.path)
        let old = try #require(configs.entry(network: "old")?.list)
        #expect(old.name == "old")
        #expect(old.cniVersion == "0.4.0")
        #expect(old.plugins.count == 1)
        #expect(old.plugins.first?.type == "bridge")
        #expect(old.plugins.first?.raw["bridge"]?.stringValue == "br9")
        let json = try #require(configs.entry(network: "j")?.list)
        #expect(json.plugins.map(\.type) == ["host"])
        #expect(json.cniVersion == CNIVersion.implied)
    }

    /// A file that does not parse is listed with its problem and skipped: the next file of the
    /// same name is used, and other names are unaffected.
    @Test func invalidFilesAreSkipped() throws {
        let dir = try ScratchDirectory()
        try dir.write("10-broken.conflist", "{")
        try dir.write("20-noname.conflist", #"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#)
        try dir.write("30-notype.conflist", #"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#)
        try dir.write("40-n.conflist", list("n", type: "good"))
        // A `.conf` is one plugin object: one holding a `plugins` array has no type of its own.
        try dir.write("50-listinconf.conf", list("m", type: "inner"))
        try dir.write("README", "not a config")
        try dir.write("60-dir.conflist/inner", "a directory, not a file")
        let configs = ConfigDirectory(path: dir.path)
        #expect(configs.networkNames() == ["n"])
        #expect(configs.entry(network: "n")?.list?.plugins.map(\.type) == ["good"])
        #expect(configs.entry(network: "m") == nil)
        let problems = configs.entries().filter { $0.list == nil }.map(\.path)
        #expect(
            problems
                == [
                    "10-broken.conflist", "20-noname.conflist", "30-notype.conflist", "60-dir.conflist",
                    "50-listinconf.conf",
                ].map { dir.path + "/" + $0 })
        #expect(configs.entries().allSatisfy { ($0.list == nil) == ($0.problem != nil) })
    }

    @Test func aMissingDirectoryHasNoNetworks() {
        #expect(ConfigDirectory(path: "/nonexistent-pier-state-test").entries().isEmpty)
    }
}
