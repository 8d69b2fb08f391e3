import CNI
import Foundation
import Testing

@testable import Plugins

/// `pier firewall-reload`'s plugin side over the fake kernel: reapplying on a wiped host
/// publishes again, and only Pier's own executable counts as the plugin that made the state.
/// (That a reload over intact state commits nothing needs a kernel that keeps elements:
/// PierCLITests' FirewallReloadTests watches `nft monitor` for it.)
@Suite struct FirewallReloadCoreTests {
    private func request(_ config: String) throws -> CNIRequest {
        CNIRequest(
            environment: try CNIEnvironment([
                "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1", "CNI_NETNS": Harness.netns, "CNI_IFNAME": "eth0",
                "CNI_PATH": "/opt/cni/bin",
            ]),
            config: try NetworkConfig(bytes: Array(config.utf8)))
    }

    @Test func portmapReapplyPublishesWhatIsMissing() throws {
        let harness = try Harness()
        let plugin = PortmapPlugin(kernel: harness.fake.kernel)
        try plugin.reapply(try request(PortmapCoreTests.config(#"[{"hostPort":8080,"containerPort":80}]"#)))
        let batch = try #require(harness.fake.batches.first)
        #expect(batch.contains("newtable inet pier"), "\(batch)")
        #expect(batch.contains("newsetelem inet pier dnat_v4 (1 elements)"), "\(batch)")
    }

    @Test func onlyPierExecutableCountsAsThePlugin() throws {
        let directory = NSTemporaryDirectory() + "pier-reload-\(getpid())-\(Int.random(in: 0...999_999))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let multiCall = directory + "/" + PluginTable.executableName
        #expect(FileManager.default.createFile(atPath: multiCall, contents: Data("#!/bin/true\n".utf8)))
        try FileManager.default.linkItem(atPath: multiCall, toPath: directory + "/bridge")
        try FileManager.default.createSymbolicLink(atPath: directory + "/firewall", withDestinationPath: multiCall)
        #expect(FileManager.default.createFile(atPath: directory + "/portmap", contents: Data("other\n".utf8)))
        #expect(FirewallReload.isPierExecutable("bridge", in: [directory]))
        #expect(FirewallReload.isPierExecutable("firewall", in: [directory]))
        #expect(!FirewallReload.isPierExecutable("portmap", in: [directory]))
        #expect(!FirewallReload.isPierExecutable("missing", in: [directory]))
    }
}
