import Foundation
import PierState
import Testing

@testable import ClusterStore

/// A store in a fresh temporary directory, removed afterwards.
final class TemporaryStore {
    let path: String
    let store: FileClusterStore

    init() throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("pier-store-test-\(UUID().uuidString)").path
        store = try FileClusterStore(path: path)
    }

    /// Another handle on the same directory, as a second process or host would open it.
    func reopen() throws -> FileClusterStore { try FileClusterStore(path: path) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct FileClusterStoreTests {
    @Test func createIsExclusive() throws {
        let temp = try TemporaryStore()
        guard case .written(let record) = try temp.store.create("pier/a/1", value: "one") else {
            Issue.record("first create failed")
            return
        }
        #expect(record.revision == 1)
        #expect(try temp.store.create("pier/a/1", value: "two") == .conflict(current: record))
        #expect(try temp.store.get("pier/a/1")?.value == "one")
        #expect(try temp.store.get("pier/a/2") == nil)
    }

    @Test func compareAndSwapNeedsTheCurrentRevision() throws {
        let temp = try TemporaryStore()
        let first = try temp.store.put("k", value: "v1")
        guard
            case .written(let second) = try temp.store.compareAndSwap(
                "k", expectedRevision: first.revision, value: "v2")
        else {
            Issue.record("CAS with the current revision failed")
            return
        }
        #expect(second.revision > first.revision)
        #expect(
            try temp.store.compareAndSwap("k", expectedRevision: first.revision, value: "v3")
                == .conflict(current: second))
        #expect(try temp.store.compareAndSwap("absent", expectedRevision: 1, value: "x") == .conflict(current: nil))
        #expect(try temp.store.get("k")?.value == "v2")
    }

    @Test func deleteOnlyByTheOwner() throws {
        let temp = try TemporaryStore()
        _ = try temp.store.create("lease/10.0.0.2", value: #"{"owner":"a"}"#)
        guard case .notOwner(let current) = try temp.store.delete("lease/10.0.0.2", ifValue: #"{"owner":"b"}"#) else {
            Issue.record("deleted someone else's record")
            return
        }
        #expect(current.value == #"{"owner":"a"}"#)
        #expect(try temp.store.delete("lease/10.0.0.2", ifValue: #"{"owner":"a"}"#) == .deleted)
        #expect(try temp.store.delete("lease/10.0.0.2", ifValue: #"{"owner":"a"}"#) == .absent)
        #expect(try temp.store.get("lease/10.0.0.2") == nil)
    }

    @Test func listByPrefixIsSortedAndScoped() throws {
        let temp = try TemporaryStore()
        for key in ["net/b/2", "net/a/fd00::1", "net/a/10.0.0.1", "other/x"] {
            try temp.store.put(key, value: key.uppercased())
        }
        let snapshot = try temp.store.list(prefix: "net/a/")
        #expect(snapshot.records.map(\.key) == ["net/a/10.0.0.1", "net/a/fd00::1"])
        #expect(snapshot.records.map(\.value) == ["NET/A/10.0.0.1", "NET/A/FD00::1"])
        #expect(snapshot.revision == 4)
        #expect(try temp.store.list(prefix: "").records.count == 4)
    }

    @Test(arguments: ["", "/leading", "trailing/", "a//b", "a/../b", "..", "a b", "a%2Fb", "ключ"])
    func rejectsInvalidKeys(key: String) throws {
        let temp = try TemporaryStore()
        do {
            _ = try temp.store.create(key, value: "x")
            Issue.record("accepted key \(key)")
        } catch {
            #expect(error.kind == .invalidArgument)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: temp.path + "/data").isEmpty)
    }

    @Test func recordsSurviveReopenAndSeparateHandlesAgree() throws {
        let temp = try TemporaryStore()
        try temp.store.put("a/b", value: "line1\nline2")
        let other = try temp.reopen()
        #expect(try other.get("a/b")?.value == "line1\nline2")
        #expect(try other.create("a/b", value: "x") != .written(StoreRecord(key: "a/b", value: "x", revision: 2)))
    }

    @Test func strayTemporaryFilesAreIgnoredAndCleaned() throws {
        let temp = try TemporaryStore()
        let stray = temp.path + "/data/" + FileSystem.temporaryPrefix + "999-dead"
        #expect(FileManager.default.createFile(atPath: stray, contents: Data("half".utf8)))
        #expect(try temp.store.list(prefix: "").records.isEmpty)
        try temp.store.put("k", value: "v")
        #expect(!FileManager.default.fileExists(atPath: stray))
    }

    @Test func corruptRecordIsReportedNotGuessed() throws {
        let temp = try TemporaryStore()
        #expect(FileManager.default.createFile(atPath: temp.path + "/data/bad", contents: Data("garbage".utf8)))
        do {
            _ = try temp.store.get("bad")
            Issue.record("parsed a corrupt record")
        } catch {
            #expect(error.kind == .corrupt)
        }
    }

    @Test func waitForChangeReturnsOnWriteOrTimeout() throws {
        let temp = try TemporaryStore()
        let start = try temp.store.list(prefix: "").revision
        #expect(try temp.store.waitForChange(after: start, timeoutMilliseconds: 100) == start)
        let path = temp.path
        let writer = Thread {
            usleep(100_000)
            _ = try? FileClusterStore(path: path).put("x", value: "1")
        }
        writer.start()
        let changed = try temp.store.waitForChange(after: start, timeoutMilliseconds: 5_000)
        #expect(changed == start + 1)
    }

    /// Separate handles (separate open file descriptions, hence separate flocks) on threads
    /// race to create the same keys: each key is won exactly once.
    @Test func concurrentCreatesHaveOneWinnerPerKey() throws {
        let temp = try TemporaryStore()
        let winners = Counter()
        let path = temp.path
        runOnThreads(8) { worker in
            guard let store = try? FileClusterStore(path: path) else { return }
            for index in 0..<40 {
                if case .written = try? store.create("race/\(index)", value: "w\(worker)") { winners.add() }
            }
        }
        #expect(winners.value == 40)
        #expect(try temp.store.list(prefix: "race/").records.count == 40)
        #expect(try temp.store.list(prefix: "").revision == 40)
    }

    @Test func healthCheck() throws {
        let temp = try TemporaryStore()
        try temp.store.checkHealth()
        try temp.store.put("k", value: "v")
        try temp.store.checkHealth()
        #expect(FileManager.default.createFile(atPath: temp.path + "/revision", contents: Data("x".utf8)))
        #expect(throws: ClusterStoreError.self) { try temp.store.checkHealth() }
    }

    @Test func configOpensFileStoreAndValidates() throws {
        let temp = try TemporaryStore()
        let config = ClusterStoreConfig(type: .file, path: temp.path, host: "node-a")
        #expect(try config.resolvedHost() == "node-a")
        let store = try config.open()
        try store.put("k", value: "v")
        #expect(try temp.store.get("k")?.value == "v")
        #expect(throws: ClusterStoreError.self) { try ClusterStoreConfig(type: .etcd, endpoints: ["ftp://x"]).open() }
        #expect(throws: ClusterStoreError.self) { try ClusterStoreConfig(type: .file, path: "relative").open() }
        #expect(throws: ClusterStoreError.self) { try ClusterStoreConfig(type: .file, host: "bad/host").resolvedHost() }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

/// Runs `body` on `count` real threads at once and waits for all of them.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = DispatchGroup()
    for index in 0..<count {
        done.enter()
        Thread {
            body(index)
            done.leave()
        }.start()
    }
    done.wait()
}
