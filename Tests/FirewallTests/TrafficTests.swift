import Firewall
import Foundation
import IPAddressing
import NetNS
import PierTestSupport
import Testing

/// A program running in the background inside a test host (a TCP listener), killed by
/// `stop()` or when the test ends.
///
/// SIGKILL, not SIGTERM: children of the test runner inherit its blocked-signal mask
/// (SIGTERM and SIGALRM included), so a polite terminate, or `timeout`, never arrives.
final class BackgroundProgram {
    private let process = Process()

    init(in host: TestHost, _ argv: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // `ip netns exec` execs the program, so the pid we hold is the program's own.
        process.arguments = ["ip", "netns", "exec", host.name] + argv
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// Waits until something listens on TCP `port` in `host` (at most ~5 s).
func waitForListener(in host: TestHost, port: UInt16) throws {
    for _ in 0..<50 {
        let result = try host.run(["ss", "-Hltn", "sport = :\(port)"])
        if !result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return }
        usleep(100_000)
    }
    throw SetupError(message: "nothing listens on port \(port) in \(host.name)")
}

struct SetupError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// One TCP exchange from `host`: whatever the server writes back, or nil if nothing answered.
/// socat's own timeouts bound it (select-based, so they work whatever the signal mask).
func tcpFetch(from host: TestHost, _ address: String, _ port: UInt16) throws -> String? {
    let result = try host.run(
        ["socat", "-T2", "-", "TCP:\(address):\(port),connect-timeout=2"], stdin: "", timeout: 15)
    let text = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    return result.succeeded && !text.isEmpty ? text : nil
}

/// Packets through the rules: client --(c0/h0)-- router with the Pier table --(h1/b0)-- backend.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)), .timeLimit(.minutes(1)))
struct TrafficTests {
    private func topology(_ hosts: [TestHost]) throws {
        let (client, router, backend) = (hosts[0], hosts[1], hosts[2])
        try connect(client, "c0", to: router, "h0")
        try connect(router, "h1", to: backend, "b0")
        try client.mustRun(["ip", "addr", "add", "10.98.0.2/24", "dev", "c0"])
        try client.mustRun(["ip", "route", "add", "default", "via", "10.98.0.1"])
        try router.mustRun(["ip", "addr", "add", "10.98.0.1/24", "dev", "h0"])
        try router.mustRun(["ip", "addr", "add", "10.99.0.1/24", "dev", "h1"])
        try router.mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        try backend.mustRun(["ip", "addr", "add", "10.99.0.2/24", "dev", "b0"])
        try backend.mustRun(["ip", "route", "add", "default", "via", "10.99.0.1"])
    }

    @Test func dnatMapPublishesAPortAndMasqueradeRewritesTheSource() throws {
        try withTestHosts(3) { hosts in
            let (client, router, backend) = (hosts[0], hosts[1], hosts[2])
            try topology(hosts)
            // The backend answers with the address it sees the connection coming from.
            let server = try BackgroundProgram(
                in: backend, ["socat", "TCP-LISTEN:80,reuseaddr,fork", "SYSTEM:echo peer=$SOCAT_PEERADDR"])
            defer { server.stop() }
            try waitForListener(in: backend, port: 80)
            #expect(try tcpFetch(from: client, "10.99.0.2", 80) == "peer=10.98.0.2")  // routed, untranslated

            let nft = try Firewall.NFTablesClient(namespace: NetworkNamespace.open(path: router.path))
            try nft.apply(PierLayout.setup, ensuring: PierLayout.rules)
            // Rules alone publish nothing: the map is empty.
            #expect(try tcpFetch(from: client, "10.98.0.1", 8080) == nil)

            var publish = Batch()
            publish.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.99.0.2", 80, owner: "cafe/eth0")], to: PierLayout.dnatMap.path)
            try nft.commit(publish)
            // Published: the router's port 8080 reaches the backend's port 80, source intact.
            #expect(try tcpFetch(from: client, "10.98.0.1", 8080) == "peer=10.98.0.2")
            // Locally originated connections go through the output chain's copy of the rule.
            #expect(try tcpFetch(from: router, "10.98.0.1", 8080)?.hasPrefix("peer=") == true)

            // Masquerade the client's subnet: the backend now sees the router's address.
            var masquerade = Batch()
            masquerade.addElements(
                [SetElement(prefix: try #require(IPPrefix("10.98.0.0/24")), comment: "net:clients")],
                to: PierLayout.masqueradeSubnets.path)
            try nft.commit(masquerade)
            #expect(try tcpFetch(from: client, "10.98.0.1", 8080) == "peer=10.99.0.1")

            // Unpublish by owner: the port is closed again.
            #expect(try nft.deleteElements(ownedBy: "cafe/eth0", from: PierLayout.dnatMap.path).count == 1)
            #expect(try tcpFetch(from: client, "10.98.0.1", 8080) == nil)
        }
    }
}
