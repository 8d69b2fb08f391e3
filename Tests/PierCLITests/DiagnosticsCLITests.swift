import Foundation
import PierTestSupport
import Testing

/// `pier inspect`, `network inspect`, `trace` and `doctor` as users run them: containers made by
/// `pier run`, names resolved through the runtime's records.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct DiagnosticsCLITests {
    func json(_ result: CommandResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    @Test func inspectTraceNetworkInspectAndDoctorByContainerName() throws {
        try withPier { pier in
            let network = try pier.addNetwork("diag", subnet: "10.247.1.0/24")
            let web = pier.name("web")
            let client = pier.name("client")
            try pier.mustPier(["run", "-d", "--name", web, "--net", network, "sleep", "60"])
            try pier.mustPier(["run", "-d", "--name", client, "--net", network, "sleep", "60"])

            let inspect = try json(try pier.mustPier(["inspect", web, "--json"]))
            #expect((inspect["container"] as? [String: Any])?["name"] as? String == web)
            let interfaces = try #require(inspect["interfaces"] as? [[String: Any]])
            let eth0 = try #require(interfaces.first)
            #expect(eth0["name"] as? String == "eth0")
            #expect((eth0["addresses"] as? [String])?.first?.hasPrefix("10.247.1.") == true)
            #expect((eth0["origin"] as? [String: Any])?["plugins"] as? [String] == ["bridge"])
            let veth = try #require((eth0["hostPeer"] as? [String: Any])?["name"] as? String)
            let text = try pier.mustPier(["inspect", web]).stdout
            #expect(text.contains("eth0") && text.contains(veth) && !text.contains("\u{1b}["))

            let report = try json(try pier.mustPier(["network", "inspect", network, "--json"]))
            let attachments = try #require(report["attachments"] as? [[String: Any]])
            #expect(attachments.count == 2 && attachments.allSatisfy { $0["live"] as? Bool == true })
            #expect((report["leases"] as? [[String: Any]])?.count == 2)

            let trace = try json(try pier.mustPier(["trace", client, web, "--json"]))
            #expect(trace["verdict"] as? String == "healthy", "\(trace["summary"] ?? "")")

            let doctorArguments = [
                "doctor", "--json", "--skip-kernel-probes", "--store-dir", pier.directory + "/store",
            ]
            let healthy = try pier.pier(doctorArguments)
            #expect(healthy.status == 0, "\(healthy.stdout)")

            // Provoked faults: the exit codes say so.
            try pier.host.mustRun(["ip", "link", "set", veth, "down"])
            let broken = try pier.pier(["trace", client, web, "--json", "--no-probe"])
            #expect(broken.status == 1)
            let hops = try json(broken)["hops"] as? [[String: Any]] ?? []
            #expect(hops.last?["step"] as? String == "destination.veth")
            try pier.host.mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=0"])
            let sick = try pier.pier(doctorArguments)
            #expect(sick.status == 1)
            #expect(sick.stdout.contains("host.ip_forward"))
        }
    }
}
