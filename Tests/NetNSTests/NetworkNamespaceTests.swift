import Foundation
import PierTestSupport
import Testing

@testable import NetNS

@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct NetworkNamespaceTests {
    @Test func createPerformAndDelete() throws {
        let runDirectory = "/run/netns"
        let name = "pier-t-ns-\(uniqueTag())"
        let namespace = try NetworkNamespace.create(named: name, runDirectory: runDirectory)
        defer { try? NetworkNamespace.delete(named: name, runDirectory: runDirectory) }

        // `ip` sees it, and it is a different namespace from ours.
        #expect(try runCommand(["ip", "netns", "list"]).stdout.contains(name))
        #expect(!namespace.isSame(as: try NetworkNamespace.current()))

        // Inside, the thread is in the new namespace: its loopback is down and alone.
        let inside = try namespace.perform { try NetworkNamespace.current() }
        #expect(inside.isSame(as: namespace))
        #expect(!(try NetworkNamespace.current()).isSame(as: namespace))

        // A per-netns sysctl written inside changes only that namespace.
        try namespace.perform { try Sysctl.write("net/ipv4/ip_forward", "1") }
        let inOther = try runCommand(["ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv4/ip_forward"]).stdout
        #expect(inOther.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        #expect(try namespace.perform { try Sysctl.read("net/ipv4/ip_forward") } == "1")

        try NetworkNamespace.delete(named: name, runDirectory: runDirectory)
        #expect(!(try runCommand(["ip", "netns", "list"]).stdout.contains(name)))
        // Deleting again is not an error.
        try NetworkNamespace.delete(named: name, runDirectory: runDirectory)
    }

    @Test func openRejectsNonNamespaceFiles() throws {
        #expect(throws: NamespaceError.self) { try NetworkNamespace.open(path: "/etc/hostname") }
        do {
            _ = try NetworkNamespace.open(path: "/run/netns/pier-t-missing-\(uniqueTag())")
            Issue.record("opening a missing namespace succeeded")
        } catch {
            #expect(error.isNotFound)
        }
    }

    @Test func sysctlRejectsPathEscapes() {
        #expect(throws: Sysctl.Failure.self) { try Sysctl.read("net/../../etc/passwd") }
        #expect(throws: Sysctl.Failure.self) { try Sysctl.read("") }
    }

    @Test func namesAreValidated() {
        #expect(!NetworkNamespace.isValidName("../x"))
        #expect(!NetworkNamespace.isValidName(""))
        #expect(NetworkNamespace.isValidName("pier-abc"))
    }
}
