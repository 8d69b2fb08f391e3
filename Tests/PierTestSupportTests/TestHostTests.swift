import Foundation
import PierTestSupport
import Testing

@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct TestHostTests {
    @Test func hostsAreJoinedByVethAndPing() throws {
        try withTestHosts(2) { hosts in
            let (a, b) = (hosts[0], hosts[1])
            try connect(a, "va", to: b, "vb")
            try a.mustRun(["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])
            try b.mustRun(["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"])
            #expect(a.canPing("192.0.2.2"))
            #expect(try a.addresses(of: "va") == ["192.0.2.1/24"])
            #expect(try b.linkNames().sorted() == ["lo", "vb"])
        }
    }

    @Test func destroyRemovesTheNamespace() throws {
        let host = try TestHost()
        let name = host.name
        host.destroy()
        let list = try runCommand(["ip", "netns", "list"]).stdout
        #expect(!list.contains(name))
    }
}
