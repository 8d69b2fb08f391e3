import CPierShim
import Foundation
import PierTestSupport
import Testing

@testable import Runtime

/// The listing line parser `ps` runs over every container: byte-wise, no root needed.
struct ListingParsingTests {
    static func summary() -> ContainerSummary {
        var record = ContainerRecord(
            id: ContainerID.generate(), name: "wéb\\1", command: ["sh", "-c", "echo a\tb\\n\u{1F}", ""],
            networkMode: .networks(["pier", "other"]))
        record.status = .started
        record.pid = 4_194_303
        record.pidStartTime = UInt64.max
        record.monitorRobustList = 0x7f12_3456_78a0
        record.detached = true
        record.exitCode = -3
        record.attachments = [
            .init(network: "pier", ifName: "eth0", addresses: ["10.1.0.2/24", "fd00::2/64"]),
            .init(network: "other", ifName: "eth1", addresses: ["10.2.0.2/24"]),
        ]
        return ContainerSummary(record)
    }

    /// Every field survives the round trip, escapes and all, and empty fields stay empty.
    @Test func linesRoundTrip() throws {
        let summary = Self.summary()
        let parsed = try #require(ContainerSummary(line: Array(summary.line.utf8)[...]))
        #expect(parsed == summary)
        #expect(parsed.command == ["sh", "-c", "echo a\tb\\n\u{1F}", ""])
        #expect(parsed.addresses == ["10.1.0.2/24", "fd00::2/64", "10.2.0.2/24"])
        #expect(parsed.network == "pier,other")

        let bare = ContainerSummary(ContainerRecord(id: "abc", name: "n", command: [], networkMode: .none))
        let parsedBare = try #require(ContainerSummary(line: Array(bare.line.utf8)[...]))
        #expect(parsedBare == bare)
        #expect(parsedBare.pid == nil && parsedBare.exitCode == nil && parsedBare.addresses.isEmpty)
        #expect(parsedBare.command.isEmpty)
    }

    /// Read in place, as `ps` reads it: the text fields written out unescaped, a command's words joined
    /// by spaces while a 0x1F inside a word stays, and the numbers as the summary has them.
    @Test func linesReadInPlaceMatchTheSummary() throws {
        func text(_ field: ListedText, separator: UInt8 = 0x1F) -> String {
            var out: [UInt8] = []
            field.append(to: &out, joiningPiecesWith: separator)
            return String(decoding: out, as: UTF8.self)
        }
        let summary = Self.summary()
        try Array(summary.line.utf8).withUnsafeBufferPointer { line in
            let listed = try #require(ListedContainer(parsing: line))
            #expect(text(listed.name) == summary.name)
            #expect(text(listed.id) == summary.id && listed.id.string == summary.id)
            #expect(text(listed.addresses) == summary.addresses.joined(separator: ","))
            #expect(text(listed.command, separator: UInt8(ascii: " ")) == summary.command.joined(separator: " "))
            #expect(text(listed.network) == "pier,other")
            #expect(listed.status == .started && listed.pid == summary.pid && listed.exitCode == -3)
            #expect(listed.monitorRobustList == summary.monitorRobustList && listed.detached)
            #expect(ContainerSummary(listed) == summary)
        }
        // A line without escapes is copied as it is.
        let plain = ContainerSummary(
            ContainerRecord(id: "abc", name: "plain", command: ["a", "b"], networkMode: .none))
        try Array(plain.line.utf8).withUnsafeBufferPointer { line in
            let listed = try #require(ListedContainer(parsing: line))
            #expect(text(listed.command, separator: UInt8(ascii: " ")) == "a b")
            #expect(text(listed.name) == "plain")
        }
    }

    /// A line with a field too few or too many, or an unknown status, is refused (the listing is then
    /// rebuilt from the records).
    @Test func malformedLinesAreRefused() {
        let fields = Self.summary().line.components(separatedBy: "\t")
        #expect(fields.count == 12)
        let parse = { (text: String) in ContainerSummary(line: Array(text.utf8)[...]) }
        #expect(parse(fields.joined(separator: "\t")) != nil)
        #expect(parse(fields.dropLast().joined(separator: "\t")) == nil)
        #expect(parse((fields + ["x"]).joined(separator: "\t")) == nil)
        var unknown = fields
        unknown[2] = "sleeping"
        #expect(parse(unknown.joined(separator: "\t")) == nil)
        #expect(parse("") == nil)
    }

    /// Numbers: decimal with an optional minus; anything else, or out of range, is no number.
    @Test func numbersAreDecimal() {
        func int32(_ text: String) -> Int32? { ContainerSummary.number(Array(text.utf8)[...]) }
        func uint64(_ text: String) -> UInt64? { ContainerSummary.number(Array(text.utf8)[...]) }
        #expect(int32("0") == 0)
        #expect(int32("4194303") == 4_194_303)
        #expect(int32("-137") == -137)
        #expect(int32("2147483647") == Int32.max)
        #expect(int32("-2147483648") == Int32.min)
        #expect(int32("2147483648") == nil)
        #expect(int32("") == nil)
        #expect(int32("-") == nil)
        #expect(int32("12a") == nil)
        #expect(int32(" 1") == nil)
        #expect(uint64("18446744073709551615") == UInt64.max)
        #expect(uint64("18446744073709551616") == nil)
        #expect(uint64("-1") == nil)
    }

    /// Pieces of a joined field: empty ones kept for commands (an empty argument), dropped for addresses.
    @Test func piecesSplitOnTheSeparator() {
        func pieces(_ text: String, keepingEmpty: Bool) -> [String] {
            Array(text.utf8).withUnsafeBufferPointer {
                ContainerSummary.pieces($0, separator: UInt8(ascii: ","), keepingEmpty: keepingEmpty)
            }
        }
        #expect(pieces("", keepingEmpty: true) == [])
        #expect(pieces("a", keepingEmpty: true) == ["a"])
        #expect(pieces("a,,b,", keepingEmpty: true) == ["a", "", "b", ""])
        #expect(pieces(",a,,b,", keepingEmpty: false) == ["a", "b"])
        #expect(pieces("a\\tb,c\\\\", keepingEmpty: false) == ["a\tb", "c\\"])
    }

    /// The journal: the last line of an ID wins, a removal drops it, and one added again after its
    /// removal is listed where it was added last; lines are found across appends of any length.
    @Test func journalKeepsTheLastLineOfEachID() throws {
        let root = NSTemporaryDirectory() + "pier-listing-\(uniqueTag())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = StateStore(root: root)
        var records = (0..<50).map { StateStoreTests.record("c\($0)") }
        for record in records { try store.save(record) }
        records[7].status = .started
        records[7].pid = 77
        try store.save(records[7])
        store.remove(id: records[3].id)
        try store.save(records[3])
        let expected = records.enumerated().filter { $0.offset != 3 }.map(\.element) + [records[3]]
        #expect(store.summaries() == expected.map(ContainerSummary.init))
        #expect(store.summaries()[6].pid == 77)
    }

    /// A `sleep` under `setsid`, spawned without Foundation (which would reap it), waited for until it
    /// leads its own session; killed and reaped at the end of the test whatever happened.
    final class SessionLeader {
        let pid: pid_t
        let deadline = Date().addingTimeInterval(5)
        private var reaped = false

        init() throws {
            var pid: pid_t = 0
            let command: [String] = ["/usr/bin/setsid", "sleep", "30"]
            let argv = command.map { strdup($0) } + [nil]
            defer { for argument in argv { free(argument) } }
            let result = posix_spawn(&pid, "/usr/bin/setsid", nil, nil, argv, environ)
            try #require(result == 0, "posix_spawn setsid: \(result)")
            self.pid = pid
            // setsid(1) makes its own process the session leader, then execs `sleep` in it.
            while getsid(pid) != pid && Date() < deadline { usleep(10_000) }
            try #require(getsid(pid) == pid)
        }

        /// Killed but not reaped: a zombie, whose pid still exists.
        func makeZombie() throws {
            kill(pid, SIGKILL)
            while ProcessState.stat(pid)?.state != "Z" && Date() < deadline { usleep(10_000) }
            try #require(ProcessState.stat(pid)?.state == "Z")
        }

        func reap() {
            guard !reaped else { return }
            kill(pid, SIGKILL)
            waitpid(pid, nil, 0)
            reaped = true
        }

        deinit { reap() }
    }

    /// `ps`'s liveness of a detached container: a live session leader runs; once it has exited (a zombie
    /// nobody reaped yet) or is reaped, it does not, though the pid still exists as a zombie.
    @Test func aDetachedContainersZombieIsNotRunning() throws {
        var summary = Self.summary()
        summary.monitorRobustList = nil
        let leader = try SessionLeader()
        summary.pid = leader.pid
        #expect(summary.isRunning)

        try leader.makeZombie()
        #expect(getsid(leader.pid) == leader.pid)
        #expect(!summary.isRunning)

        leader.reap()
        #expect(!summary.isRunning)
        summary.status = .created
        #expect(!summary.isRunning)
    }

    /// With the monitor's robust list recorded, one `get_robust_list` decides: the same list at that
    /// pid runs; another list (a recycled pid) or none (a zombie) does not.
    @Test func aRecordedRobustListIdentifiesTheMonitor() throws {
        var summary = Self.summary()
        let leader = try SessionLeader()
        summary.pid = leader.pid
        // glibc registers the list as the process starts; sleep(1) is dynamically linked to glibc.
        while pier_robust_list_head(leader.pid) == 0 && Date() < leader.deadline { usleep(10_000) }
        let list = pier_robust_list_head(leader.pid)
        try #require(list != 0)
        summary.monitorRobustList = list
        #expect(summary.isRunning)
        summary.monitorRobustList = list &+ 64
        #expect(!summary.isRunning)

        summary.monitorRobustList = list
        try leader.makeZombie()
        #expect(!summary.isRunning)
        leader.reap()
        #expect(!summary.isRunning)
    }
}
