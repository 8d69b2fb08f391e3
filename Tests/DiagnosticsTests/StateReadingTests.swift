import CNI
import Diagnostics
import Foundation
import PierState
import PluginSupport
import Testing

/// Diagnostics read configs, leases and the result cache through `PierState`, the code the
/// runtime and the plugins use, so what they describe is what those use. Each test here shows a
/// case where the former diagnostics-only readers described something else. No root needed.
struct StateReadingTests {
    final class Scratch {
        let path = NSTemporaryDirectory() + "pier-diag-state-" + UUID().uuidString
        deinit { try? FileManager.default.removeItem(atPath: path) }

        func write(_ name: String, _ text: String) throws {
            let url = URL(fileURLWithPath: path + "/" + name)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
    }

    /// `pier network inspect web` described `00-web.conf` (first in one sorted list) while
    /// `pier run --net web` used `10-web.conflist` (libcni searches conflists first).
    @Test func networkInspectDescribesTheFileRunUses() throws {
        let dir = Scratch()
        try dir.write("00-web.conf", #"{"cniVersion":"0.4.0","name":"web","type":"bridge","bridge":"conf0"}"#)
        try dir.write(
            "10-web.conflist", #"{"cniVersion":"1.0.0","name":"web","plugins":[{"type":"bridge","bridge":"list0"}]}"#)
        let reader = ConfigDirectoryReader(directory: dir.path)
        let entry = try #require(reader.entry(network: "web"))
        #expect(entry.path == dir.path + "/10-web.conflist")
        #expect(entry.summary.bridge == "list0")
        #expect(entry.path == ConfigDirectory(path: dir.path).entry(network: "web")?.path)
        // doctor's list: one entry per name, the one that wins.
        #expect(reader.entries().map(\.path) == [dir.path + "/10-web.conflist"])
    }

    /// A `.conf` is one plugin object for the runtime (libcni's ConfFromFile); diagnostics used
    /// to read one holding a `plugins` array as a list, and to version a `.conf` without
    /// `cniVersion` as 0.2.0 where the runtime uses the spec's implied version.
    @Test func singlePluginFilesReadAsTheRuntimeReadsThem() throws {
        let dir = Scratch()
        try dir.write("10-a.conf", #"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}"#)
        try dir.write("20-b.conf", #"{"name":"b","type":"bridge"}"#)
        let reader = ConfigDirectoryReader(directory: dir.path)
        #expect(reader.entry(network: "a") == nil)
        #expect(reader.entry(network: "b")?.summary.cniVersion == CNIVersion.implied)
    }

    /// Leases the IPAM store ignores (and reclaims) were listed as held, and a record split by a
    /// bare LF was read as id/ifname although IPAM (and host-local) take it for a legacy ID.
    @Test func leasesAreTheOnesIPAMSees() throws {
        let dir = Scratch()
        try dir.write("net1/10.0.0.2", "c2\r\neth0")
        try dir.write("net1/10.0.0.3", "")
        try dir.write("net1/fd00:0::4", "c4\r\neth0")
        try dir.write("net1/10.0.0.5", "c5\neth1")
        try dir.write("net1/10.0.0.6", " c6 \r\n eth0 \n")
        let leases = LeaseReader(dataDirectory: dir.path).leases(network: "net1")
        #expect(leases.map(\.address) == ["10.0.0.2", "10.0.0.5", "10.0.0.6"])
        #expect(leases.map(\.containerID) == ["c2", "c5\neth1", "c6 "])
        #expect(leases.map(\.ifName) == ["eth0", "", " eth0"])
    }

    /// Plugin defaults come from the plugins' own code: the bridge's default name and
    /// isolation; the overlay names its bridge after the VNI whatever a `bridge` key says, and
    /// isolates only with `ipMasq` (it has no `isolation` key).
    @Test func summaryUsesThePluginsDefaults() throws {
        func summary(_ plugin: String) throws -> NetworkConfigList.Summary {
            NetworkConfigList.Summary(
                try NetworkConfigList(bytes: Array(#"{"cniVersion":"1.0.0","name":"n","plugins":[\#(plugin)]}"#.utf8)))
        }
        let bridge = try summary(#"{"type":"bridge"}"#)
        #expect(bridge.bridge == PluginDefaults.bridgeName)
        #expect(bridge.isolation == PluginDefaults.bridgeIsolation)
        #expect(try summary(#"{"type":"bridge","bridge":"b1","isolation":false}"#).isolation == false)
        let overlay = try summary(#"{"type":"vxlan-overlay","vni":42,"bridge":"ignored","isolation":true}"#)
        #expect(overlay.bridge == "pov-00002a")
        #expect(overlay.isolation == false)
        #expect(try summary(#"{"type":"vxlan-overlay","vni":42,"ipMasq":true}"#).isolation == true)
    }

    /// A store password in a config never reaches a report (doctor and network inspect print
    /// the config as written otherwise).
    @Test func storePasswordsAreRedacted() throws {
        let list = try NetworkConfigList(
            bytes: Array(
                #"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"vxlan-overlay","vni":7,"store":{"type":"etcd","endpoints":["https://e:2379"],"username":"u","password":"s3cret"}}]}"#
                    .utf8))
        let raw = try #require(NetworkConfigList.Summary(list).raw)
        let text = String(decoding: raw.encodedBytes, as: UTF8.self)
        #expect(!text.contains("s3cret"))
        #expect(text.contains("<redacted>"))
        #expect(text.contains("\"username\":\"u\""))
    }

    /// An entry the runtime writes is what diagnostics read back.
    @Test func cacheEntriesReadBack() throws {
        let dir = Scratch()
        let entry = ResultCacheEntry(
            networkName: "t1", containerID: "cid", ifName: "eth0", netns: "/run/netns/x",
            capabilityArgs: [
                "portMappings": .array([.object(["hostPort": .integer(8080), "containerPort": .integer(80)])])
            ],
            config: Array(#"{"cniVersion":"1.0.0","name":"t1","plugins":[{"type":"bridge"}]}"#.utf8),
            result: .object(["ips": .array([.object(["address": .string("10.1.0.2/24")])])]))
        try dir.write("results/t1-cid-eth0", String(decoding: entry.encoded(), as: UTF8.self))
        let cached = try #require(ResultCacheReader(cacheDirectory: dir.path).all().first)
        #expect(cached.attachment == Attachment(network: "t1", containerID: "cid", ifName: "eth0"))
        #expect(cached.netns == "/run/netns/x")
        #expect(cached.addresses == ["10.1.0.2/24"])
        #expect(cached.portMappings.map { [$0.hostPort, $0.containerPort] } == [[8080, 80]])
        #expect(cached.portMappings.map(\.protocol) == ["tcp"])
        #expect(cached.configList?.bridge == PluginDefaults.bridgeName)
    }
}
