import Foundation
import PierTestSupport
import Testing

/// `pier ps` over a listing written by hand in its on-disk format (`pier-listing 3`): the format stays
/// readable, liveness is checked per line, and the table is aligned (widths in Unicode scalars). No root, namespaces or network.
struct ListingTableTests {
    /// This test process's start time (field 22 of /proc/self/stat), for a line naming a live process.
    static func ownStartTime() throws -> String {
        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        let afterName = try #require(stat.range(of: ")", options: .backwards)).upperBound
        return stat[afterName...].split(separator: " ")[19].description
    }

    @Test func psListsRunningAndDeadContainersFromTheListing() throws {
        let root = NSTemporaryDirectory() + "pier-ps-\(uniqueTag())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let live = "aaaaaaaaaaaaaaaaaaaa" + String(repeating: "1", count: 44)
        let dead = "bbbbbbbbbbbbbbbbbbbb" + String(repeating: "2", count: 44)
        let quit = "cccccccccccccccccccc" + String(repeating: "3", count: 44)
        let made = "dddddddddddddddddddd" + String(repeating: "4", count: 44)
        let gone = "eeeeeeeeeeeeeeeeeeee" + String(repeating: "5", count: 44)
        let created = "2026-12-04T20:00:00Z"
        // Not detached: alive while the pid has this start time. Detached: while the pid leads its own
        // session and is no zombie (4194304 is above the kernel's pid limit: no such process).
        let lines = [
            [
                live, "wébsérvïcé", "started", created, "\(getpid())", try Self.ownStartTime(), "", "0", "", "pier",
                "10.1.0.2/24",
                "sh\u{1F}-c\u{1F}echo a\\tb",
            ],
            [
                dead, "dead", "started", created, "4194304", "99", "", "1", "", "pier,other", "10.1.0.3/24,fd00::3/64",
                "sleep\u{1F}9",
            ],
            [quit, "quit", "started", created, "4194304", "99", "", "0", "3", "host", "", "false"],
            [made, "made", "created", created, "", "", "", "0", "", "none", "", "true"],
            [gone, "gone", "created", created, "", "", "", "0", "", "none", "", "true"],
        ].map { $0.joined(separator: "\t") }
        // The journal: a later line for `made` wins, `gone` is removed.
        let journal = lines + [gone + "\t-", lines[3].replacingOccurrences(of: "\ttrue", with: "\ttrue\u{1F}again")]
        let body = journal.map { $0 + "\n" }.joined()
        let bootID = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try ("pier-listing 3 \(bootID) \(body.utf8.count)\n" + body).write(
            toFile: root + "/listing", atomically: true, encoding: .utf8)
        func ps(_ arguments: [String]) throws -> String {
            let result = try runCommand([builtProductsDirectory + "/pier", "--root", root, "ps"] + arguments)
            try #require(result.succeeded, "pier ps \(arguments): \(result.stderr)")
            return result.stdout
        }

        #expect(
            try ps(["-a"]) == """
                CONTAINER ID  NAME        STATUS        NETWORKS    ADDRESSES               COMMAND
                aaaaaaaaaaaa  wébsérvïcé  running       pier        10.1.0.2/24             sh -c echo a\tb
                bbbbbbbbbbbb  dead        exited (137)  pier,other  10.1.0.3/24,fd00::3/64  sleep 9
                cccccccccccc  quit        exited (3)    host                                false
                dddddddddddd  made        created       none                                true again

                """)
        #expect(
            try ps([]) == """
                CONTAINER ID  NAME        STATUS   NETWORKS  ADDRESSES    COMMAND
                aaaaaaaaaaaa  wébsérvïcé  running  pier      10.1.0.2/24  sh -c echo a\tb

                """)
        #expect(try ps(["-aq"]) == [live, dead, quit, made].map { String($0.prefix(12)) + "\n" }.joined())
        #expect(try ps(["-q"]) == String(live.prefix(12)) + "\n")
    }
}
