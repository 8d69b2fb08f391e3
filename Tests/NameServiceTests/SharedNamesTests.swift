import Foundation
import NameService
import PierTestSupport
import Testing

/// Overlay networks span hosts: with a cluster store in the `names` config, each host's server
/// also answers the containers the other hosts registered (two runtime test hosts, one file
/// store directory standing in for the cluster).
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct SharedNamesTests {
    static func waitFor(_ seconds: Double = 6, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if try condition() { return true }
            usleep(200_000)
        } while Date() < deadline
        return false
    }

    @Test func namesOfContainersOnOtherHostsResolveThroughTheClusterStore() throws {
        let storeDirectory = NSTemporaryDirectory() + "pier-t-store-\(uniqueTag())"
        defer { try? FileManager.default.removeItem(atPath: storeDirectory) }
        let network = "pier-t-overlay-\(uniqueTag())"
        try withNamesWorld { hostA in
            try withNamesWorld { hostB in
                func names(_ host: String) -> [String: Any] {
                    ["internal": true, "store": ["type": "file", "path": storeDirectory, "host": host]]
                }
                let onA = hostA.network(subnets: ["10.89.10.0/24"], bridge: "pdnssa", names: names("a"), name: network)
                let onB = hostB.network(subnets: ["10.89.11.0/24"], bridge: "pdnssb", names: names("b"), name: network)
                try hostA.attach(onA, id: "sa1", name: "alpha")
                try hostB.attach(onB, id: "sb1", name: "bravo", aliases: ["db"])
                let a1 = try #require(hostA.containers["sa1"])
                let b1 = try #require(hostB.containers["sb1"])

                var fromA: [DNSAnswer] = []
                #expect(
                    try Self.waitFor {
                        fromA = try hostA.ask(from: a1, server: "10.89.10.1", ["bravo A", "db.dns.pier A", "alpha A"])
                        return fromA.first == .found(["10.89.11.2"])
                    }, "\(fromA)")
                #expect(fromA == [.found(["10.89.11.2"]), .found(["10.89.11.2"]), .found(["10.89.10.2"])])
                var fromB: DNSAnswer?
                #expect(
                    try Self.waitFor {
                        fromB = try hostB.ask(from: b1, server: "10.89.11.1", "alpha A")
                        return fromB == .found(["10.89.10.2"])
                    }, "\(String(describing: fromB))")

                let published = (try? FileManager.default.contentsOfDirectory(atPath: storeDirectory + "/data")) ?? []
                #expect(
                    published.filter { $0.hasPrefix("pier%2Fnames%2F\(network)%2F") }.count == 2, "\(published)")
                // Gone from the store with the DEL; the other host forgets it within its poll.
                try hostB.detach("sb1")
                #expect(hostB.serverPID == nil, "other hosts' names keep no server alive")
                #expect(
                    try Self.waitFor { try hostA.ask(from: a1, server: "10.89.10.1", "bravo A") == .nxdomain },
                    "bravo is forgotten on host a")
                try hostA.detach("sa1")
                #expect(hostA.serverPID == nil)
                // The file store keeps one file per key under data/, `/` encoded as %2F.
                let keys = (try? FileManager.default.contentsOfDirectory(atPath: storeDirectory + "/data")) ?? []
                #expect(!keys.contains { $0.hasPrefix("pier%2Fnames%2F") }, "\(keys)")
            }
        }
    }
}
