import Foundation
import PierTestSupport
import Testing

/// The README's quick start, run exactly as written (only `pier=` points at a wrapper that adds this
/// harness's paths), inside a test host, with the shipped `pier` network (its leases kept in the harness).
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct QuickStartTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The shell block between the quick-start markers.
    static func quickStart() throws -> String {
        let readme = try String(contentsOf: repository.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "<!-- quick start:"))
        let end = try #require(readme.range(of: "<!-- end of quick start -->"))
        let section = readme[start.upperBound..<end.lowerBound]
        let open = try #require(section.range(of: "```sh\n"))
        let close = try #require(section.range(of: "```", range: open.upperBound..<section.endIndex))
        return String(section[open.upperBound..<close.lowerBound])
    }

    @Test(.enabled(if: PierHarness.portmapBuilt, "portmap is not built"))
    func readmeQuickStartRunsAsWritten() throws {
        let script = try QuickStartTests.quickStart()
        let lines = script.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first?.hasPrefix("pier=.build/debug/pier") == true, "\(script)")
        try withPier { pier in
            // The shipped network, with its leases in the harness instead of /var/lib/cni.
            let shipped = try Data(
                contentsOf: QuickStartTests.repository.appendingPathComponent("conf/10-pier.conflist"))
            var list = try #require(try JSONSerialization.jsonObject(with: shipped) as? [String: Any])
            var plugins = try #require(list["plugins"] as? [[String: Any]])
            var ipam = try #require(plugins[0]["ipam"] as? [String: Any])
            ipam["dataDir"] = pier.leaseDirectory
            ipam["type"] = PierHarness.ipamPlugin.type
            plugins[0]["ipam"] = ipam
            list["plugins"] = plugins
            try JSONSerialization.data(withJSONObject: list).write(
                to: URL(fileURLWithPath: pier.configDirectory + "/10-pier.conflist"))
            // The README's names, with namespaces pinned in the harness rather than in /run/netns.
            let netnsDirectory = pier.directory + "/netns"
            defer { _ = try? runCommand(["umount", "-l", netnsDirectory]) }
            let wrapper = pier.directory + "/pier"
            let command = (pier.command([]).dropFirst(2) + ["--netns-dir", netnsDirectory]).map { "'\($0)'" }
                .joined(separator: " ")
            try "#!/bin/sh\nexec \(command) \"$@\"\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)
            let body = (["pier=\(wrapper)"] + lines.dropFirst()).joined(separator: "\n")
            defer { _ = try? pier.pier(["--netns-dir", netnsDirectory, "rm", "-f", "web", "client", "pub"]) }
            let result = try runCommand(
                ["nsenter", "--net=\(pier.host.path)", "bash", "-e", "-o", "pipefail", "-c", body], timeout: 120)
            #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
            // Both fetches printed the start of the server's directory listing.
            #expect(
                result.stdout.components(separatedBy: "<!DOCTYPE HTML").count == 3, "\(result.stdout)\n\(result.stderr)"
            )
            #expect(try pier.leftovers() == [])
            #expect(try FileManager.default.contentsOfDirectory(atPath: netnsDirectory) == [])
            // With its last namespace gone, the netns directory is a plain directory again: it can be deleted.
            let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
            #expect(!mounts.contains(" \(netnsDirectory) "), "\(netnsDirectory) is still mounted")
        }
    }
}
