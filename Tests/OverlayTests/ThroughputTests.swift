import Foundation
import PierTestSupport
import Testing

/// TCP throughput between containers on two test hosts, beside the bare underlay between those
/// hosts, in one run (iperf3, 3 s each); and the default MTU carries a full-size packet with DF.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ThroughputTests {
    @Test func overlayBesideUnderlayAndNoFragmentation() throws {
        let cluster = try OverlayCluster(hosts: 2, store: .file)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        try cluster.startAgent(host: 0, network: network.name)
        let serverKey = "srv-\(uniqueTag(4))"
        let clientKey = "cli-\(uniqueTag(4))"
        let serverIP = try network.add(serverKey, host: 0)
        _ = try network.add(clientKey, host: 1)
        let server = try cluster.container(serverKey)
        let client = try cluster.container(clientKey)
        #expect(eventually(within: 3) { client.canPing(serverIP, timeoutSeconds: 1) })

        // Default MTU: underlay 1500 - 50. A 1450-byte packet with DF crosses; 1451 does not fit.
        let mtu = try client.link("eth0")?["mtu"] as? Int
        #expect(mtu == 1450)
        let full = try client.run(["ping", "-M", "do", "-c", "1", "-W", "2", "-s", "1422", serverIP])
        #expect(full.succeeded, "\(full.stdout) \(full.stderr)")
        let tooBig = try client.run(["ping", "-M", "do", "-c", "1", "-W", "1", "-s", "1423", serverIP])
        #expect(!tooBig.succeeded)

        let overlay = try iperf(server: server, client: client, address: serverIP)
        let underlay = try iperf(server: cluster.hosts[0], client: cluster.hosts[1], address: cluster.vtep(0))
        let line = String(
            format: "iperf3 -t 3: overlay %.2f Gbit/s (retransmits %d), underlay %.2f Gbit/s (retransmits %d)",
            overlay.gbps, overlay.retransmits, underlay.gbps, underlay.retransmits)
        print(line)
        #expect(overlay.gbps > 0.1, "\(line)")
        #expect(underlay.gbps > 0.1, "\(line)")
    }

    struct Measurement {
        var gbps: Double
        var retransmits: Int
    }

    private func iperf(server: TestHost, client: TestHost, address: String) throws -> Measurement {
        let port = String(Int.random(in: 20000...30000))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", server.name, "iperf3", "-s", "-1", "-p", port]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            // SIGKILL: a child of the test runner may ignore SIGTERM.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        var result: CommandResult?
        for _ in 0..<20 {
            usleep(150_000)
            let attempt = try client.run(["iperf3", "-c", address, "-p", port, "-t", "3", "-J"], timeout: 20)
            result = attempt
            if attempt.succeeded { break }
        }
        guard let result, result.succeeded,
            let object = try result.json() as? [String: Any], let end = object["end"] as? [String: Any],
            let received = end["sum_received"] as? [String: Any],
            let bits = received["bits_per_second"] as? Double
        else { throw IperfFailed(output: "\(result?.stdout ?? "") \(result?.stderr ?? "")") }
        let sent = end["sum_sent"] as? [String: Any]
        return Measurement(gbps: bits / 1e9, retransmits: sent?["retransmits"] as? Int ?? 0)
    }
}

struct IperfFailed: Error, CustomStringConvertible {
    let output: String
    var description: String { "iperf3 failed: \(output)" }
}
