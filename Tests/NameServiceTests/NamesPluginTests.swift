import Foundation
import NameService
import PierTestSupport
import Testing

/// The `names` plugin chained after `bridge` on a test runtime host, with the name server it
/// starts answering real DNS queries from inside containers.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct NamesPluginTests {
    @Test func containersResolveEachOtherByNameAliasAndHostnameOnTheirNetworkOnly() throws {
        try withNamesWorld { world in
            let front = world.network(
                subnets: ["10.89.1.0/24", "fd89:1::/64"], bridge: "pdnsf", names: ["internal": true])
            let back = world.network(subnets: ["10.89.2.0/24"], bridge: "pdnsb", names: ["internal": true])
            let result = try world.attach(front, id: "a1", name: "alpha", aliases: ["web"], hostname: "alpha-host")
            try world.attach(front, id: "a2", name: "bravo", aliases: ["db", "store"], hostname: "bravo-host")
            try world.attach(back, id: "b1", name: "charlie")

            // The result sends the container to the gateways, with the domain to search.
            let dns = try #require(result["dns"] as? [String: Any])
            #expect(dns["nameservers"] as? [String] == ["10.89.1.1", "fd89:1::1"])
            #expect(dns["search"] as? [String] == ["dns.pier"])

            let a1 = try #require(world.containers["a1"])
            let b1 = try #require(world.containers["b1"])
            let bravo = ["10.89.1.3"]
            let answers = try world.ask(
                from: a1, server: "10.89.1.1",
                [
                    "bravo A", "bravo AAAA", "db A", "store.dns.pier A", "bravo-host A", "BRAVO.DNS.PIER. A",
                    "bravo A tcp", "3.1.89.10.in-addr.arpa PTR", "charlie.dns.pier A", "charlie A", "alpha A",
                ])
            #expect(answers[0] == .found(bravo))
            #expect(answers[1] == .found(["fd89:1::3"]))
            #expect(answers[2] == .found(bravo))
            #expect(answers[3] == .found(bravo))
            #expect(answers[4] == .found(bravo))
            #expect(answers[5] == .found(bravo))
            #expect(answers[6] == .found(bravo))
            #expect(answers[7] == .found(["bravo.dns.pier"]))
            // Another network's container does not exist here (internal: nothing is forwarded).
            #expect(answers[8] == .nxdomain)
            #expect(answers[9] == .nxdomain)
            #expect(answers[10] == .found(["10.89.1.2"]))
            // Over IPv6 to the IPv6 gateway too.
            #expect(try world.ask(from: a1, server: "fd89:1::1", "web AAAA") == .found(["fd89:1::2"]))
            // And the other way round, from the other network: only its own names.
            let fromBack = try world.ask(from: b1, server: "10.89.2.1", ["charlie A", "alpha A", "web.dns.pier A"])
            #expect(fromBack == [.found(["10.89.2.2"]), .nxdomain, .nxdomain])
            // A container of the other network cannot use this network's server (no route, no answer).

            // CHECK passes while registered.
            let config = try #require(world.namesConfig(of: "a2"))
            let check = try world.run("CHECK", config, id: "a2", container: try #require(world.containers["a2"]))
            #expect(check.status == 0, "CHECK: \(check.stdout)")

            // DEL forgets the names at once; the others stay.
            try world.detach("a2")
            #expect(
                try world.ask(from: a1, server: "10.89.1.1", ["bravo A", "db A", "alpha A"]) == [
                    .nxdomain, .nxdomain, .found(["10.89.1.2"]),
                ])
            // DEL of something already gone succeeds.
            let again = try world.run("DEL", config, id: "a2", container: try #require(world.containers["a2"]))
            #expect(again.status == 0, "second DEL: \(again.stdout)")

            let pid = try #require(world.serverPID)
            try world.detach("a1")
            #expect(world.serverPID == pid, "one network still has records")
            try world.detach("b1")
            #expect(world.serverPID == nil, "the server exits after the last DEL")
            #expect(!FileManager.default.fileExists(atPath: world.store.socketPath))
        }
    }

    @Test func otherNamesAreForwardedUpstreamExceptOnInternalNetworks() throws {
        try withTestHosts(1) { hosts in
            try withNamesWorld { world in
                let upstreamHost = hosts[0]
                try connect(world.runtime, "up0", to: upstreamHost, "up1")
                try world.runtime.mustRun(["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"])
                try upstreamHost.mustRun(["ip", "addr", "add", "192.0.2.53/24", "dev", "up1"])
                let upstream = try FakeUpstream(in: upstreamHost, address: "192.0.2.53")
                defer { upstream.stop() }

                // Two upstreams, one dead: rotation and the per-attempt timeout still get an answer.
                let open = world.network(
                    subnets: ["10.89.3.0/24"], bridge: "pdnso", names: ["upstreams": ["192.0.2.53", "192.0.2.99"]])
                let closed = world.network(subnets: ["10.89.4.0/24"], bridge: "pdnsi", names: ["internal": true])
                try world.attach(open, id: "o1", name: "open1")
                try world.attach(closed, id: "i1", name: "closed1")
                let o1 = try #require(world.containers["o1"])
                let i1 = try #require(world.containers["i1"])

                let forwarded = try world.ask(
                    from: o1, server: "10.89.3.1",
                    ["upstream.example A", "upstream.example A", "missing.example A", "open1 A", "closed1 A"])
                #expect(forwarded[0] == .found(["198.51.100.7"]))
                #expect(forwarded[1] == .found(["198.51.100.7"]))
                #expect(forwarded[2] == .nxdomain)
                #expect(forwarded[3] == .found(["10.89.3.2"]))
                // Not a name of this network: asked upstream, which does not know it.
                #expect(forwarded[4] == .nxdomain)
                #expect(upstream.questions.contains("closed1"))

                let before = upstream.questions.count
                let isolated = try world.ask(from: i1, server: "10.89.4.1", ["upstream.example A", "closed1 A"])
                #expect(isolated == [.nxdomain, .found(["10.89.4.2"])])
                #expect(upstream.questions.count == before, "an internal network forwards nothing")

                try world.detach("o1")
                try world.detach("i1")
                #expect(world.serverPID == nil)
            }
        }
    }

    @Test func twentyConcurrentAddsAreAllResolvableFromOneServer() throws {
        try withNamesWorld { world in
            let network = world.network(
                subnets: ["10.89.5.0/24", "fd89:5::/64"], bridge: "pdnsc", names: ["internal": true])
            let ids = (1...20).map { "c\($0)" }
            let errors = ErrorLog()
            DispatchQueue.concurrentPerform(iterations: ids.count) { index in
                do {
                    try world.attach(network, id: ids[index], name: "node\(index + 1)", aliases: ["pool"])
                } catch {
                    errors.append("\(ids[index]): \(error)")
                }
            }
            #expect(errors.all.isEmpty, "\(errors.all)")
            #expect(world.store.records(network: network.name).count == 20)
            #expect(world.serverPID != nil)
            let running = try runCommand(["pgrep", "-f", "pier-dns --ready-fd [0-9]+ \(world.recordsDirectory)$"])
            #expect(running.stdout.split(separator: "\n").count == 1, "exactly one server: \(running.stdout)")

            let c1 = try #require(world.containers["c1"])
            let answers = try world.ask(from: c1, server: "10.89.5.1", (1...20).map { "node\($0) A" } + ["pool AAAA"])
            for (index, answer) in answers.prefix(20).enumerated() {
                #expect(answer.code == 0 && answer.addresses.count == 1, "node\(index + 1): \(answer)")
            }
            #expect(Set(answers.prefix(20).flatMap(\.addresses)).count == 20)
            // 20 AAAA records do not fit 512 bytes: truncated over UDP, whole over TCP.
            let pool = answers[20]
            #expect(pool.truncatedOverUDP && pool.addresses.count == 20, "\(pool)")

            DispatchQueue.concurrentPerform(iterations: ids.count) { index in
                do { try world.detach(ids[index]) } catch { errors.append("\(error)") }
            }
            #expect(errors.all.isEmpty, "\(errors.all)")
            #expect(world.serverPID == nil)
        }
    }

    @Test func garbageCollectionForgetsAttachmentsThatAreNotValid() throws {
        try withNamesWorld { world in
            let network = world.network(subnets: ["10.89.6.0/24"], bridge: "pdnsg", names: ["internal": true])
            try world.attach(network, id: "keep", name: "keeper")
            try world.attach(network, id: "drop", name: "dropped")
            let gc = """
                {"cniVersion":"1.1.0","name":"\(network.name)","type":"names","dataDir":"\(world.recordsDirectory)",
                 "cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]}
                """
            let output = try PluginRunner("names").run("GC", config: gc, in: world.runtime)
            #expect(output.status == 0, "GC: \(output.stdout)")
            let keep = try #require(world.containers["keep"])
            #expect(
                try world.ask(from: keep, server: "10.89.6.1", ["keeper A", "dropped A"]) == [
                    .found(["10.89.6.2"]), .nxdomain,
                ])
            try world.detach("keep")
            try world.detach("drop")
            #expect(world.serverPID == nil)
        }
    }

    @Test func badInputIsRefusedWithTheRightCodeAndNothingWritten() throws {
        try withNamesWorld { world in
            let container = try TestHost()
            defer { container.destroy() }
            let previous: [String: Any] = [
                "cniVersion": "1.1.0",
                "interfaces": [["name": "eth0", "sandbox": container.path]],
                "ips": [["address": "10.89.7.2/24", "gateway": "10.89.7.1", "interface": 0]],
            ]
            let network = world.network(subnets: ["10.89.7.0/24"], bridge: "pdnsx")
            func add(_ config: String, args: String = "") throws -> PluginOutput {
                try world.run("ADD", config, id: "bad", container: container, args: args)
            }
            var unchained = network.names
            unchained["cniVersion"] = "1.1.0"
            unchained["name"] = network.name
            let noPrevious = String(
                decoding: try JSONSerialization.data(withJSONObject: unchained), as: UTF8.self)
            #expect(try add(noPrevious).errorCode == 7)
            #expect(
                try add(world.namesConfig(network, previous: previous, runtimeConfig: ["aliases": ["bad name"]]))
                    .errorCode == 7)
            #expect(
                try add(world.namesConfig(network, previous: previous, runtimeConfig: [:]), args: "K8S_POD_NAME=a/b")
                    .errorCode == 4)
            var noGateway = previous
            noGateway["ips"] = [["address": "10.89.7.2/24", "interface": 0]]
            #expect(
                try add(world.namesConfig(network, previous: noGateway, runtimeConfig: ["name": "x"])).errorCode == 7)
            var badKeys = network
            badKeys.names["upstreams"] = ["not-an-address"]
            #expect(try add(world.namesConfig(badKeys, previous: previous, runtimeConfig: [:])).errorCode == 7)
            badKeys.names = ["type": "names", "dataDir": "relative/dir"]
            #expect(try add(world.namesConfig(badKeys, previous: previous, runtimeConfig: [:])).errorCode == 7)
            #expect(world.store.allRecords().isEmpty)
            #expect(world.serverPID == nil)
        }
    }
}

/// Failures collected from concurrent work.
final class ErrorLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String] = []
    func append(_ entry: String) { lock.withLock { entries.append(entry) } }
    var all: [String] { lock.withLock { entries } }
}
