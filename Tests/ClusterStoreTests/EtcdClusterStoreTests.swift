import Foundation
import PierTestSupport
import Testing

@testable import ClusterStore

/// The etcd store against a real etcd on 127.0.0.1 (a free port, a temporary data directory),
/// started per test and killed at the end. Without etcd installed these tests fail: CI installs it.
@Suite struct EtcdClusterStoreTests {
    @Test func conditionalWritesAreSingleTransactions() throws {
        let etcd = try EtcdServer()
        defer { etcd.stop() }
        let store = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/t1")
        guard case .written(let first) = try store.create("pier/a/1", value: "one") else {
            Issue.record("first create failed")
            return
        }
        #expect(try store.create("pier/a/1", value: "two") == .conflict(current: first))
        #expect(try store.get("pier/a/1") == first)
        #expect(try store.get("pier/a/2") == nil)

        guard
            case .written(let second) = try store.compareAndSwap(
                "pier/a/1", expectedRevision: first.revision, value: "v2")
        else {
            Issue.record("CAS with the current revision failed")
            return
        }
        #expect(second.revision > first.revision)
        #expect(
            try store.compareAndSwap("pier/a/1", expectedRevision: first.revision, value: "v3")
                == .conflict(current: second))
        #expect(try store.compareAndSwap("pier/absent", expectedRevision: 1, value: "x") == .conflict(current: nil))

        #expect(try store.delete("pier/a/1", ifValue: "one") == .notOwner(current: second))
        #expect(try store.delete("pier/a/1", ifValue: "v2") == .deleted)
        #expect(try store.delete("pier/a/1", ifValue: "v2") == .absent)
        #expect(try store.get("pier/a/1") == nil)
    }

    @Test func listIsByPrefixAndKeysLiveUnderTheStorePrefix() throws {
        let etcd = try EtcdServer()
        defer { etcd.stop() }
        let store = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/cluster-a")
        let other = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/cluster-b")
        try store.put("pier/n/x", value: #"{"v":1}"#)
        try store.put("pier/n/y", value: "y")
        try store.put("pier/m/z", value: "z")
        try other.put("pier/n/w", value: "w")
        let snapshot = try store.list(prefix: "pier/n/")
        #expect(snapshot.records.map(\.key) == ["pier/n/x", "pier/n/y"])
        #expect(snapshot.records.first?.value == #"{"v":1}"#)
        #expect(snapshot.revision >= (snapshot.records.map(\.revision).max() ?? 0))
        #expect(try other.list(prefix: "pier/").records.map(\.key) == ["pier/n/w"])
        // A key outside every store prefix is invisible to both.
        #expect(try store.list(prefix: "").records.count == 3)
    }

    @Test func waitForChangeWakesOnAWriteAndTimesOutOtherwise() throws {
        let etcd = try EtcdServer()
        defer { etcd.stop() }
        let store = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/w")
        let start = try store.list(prefix: "pier/").revision
        let quiet = Date()
        #expect(try store.waitForChange(after: start, timeoutMilliseconds: 300) == start)
        #expect(Date().timeIntervalSince(quiet) >= 0.25)

        let url = etcd.clientURL
        let thread = Thread {
            usleep(200_000)
            _ = try? EtcdClusterStore(endpoints: [url], prefix: "/w").put("pier/k", value: "v")
        }
        thread.start()
        let began = Date()
        let changed = try store.waitForChange(after: start, timeoutMilliseconds: 5000)
        #expect(changed > start)
        #expect(Date().timeIntervalSince(began) < 2)
    }

    /// A watcher that comes back after etcd compacted past its last revision cannot be
    /// replayed the events it missed: the watch must end at once with a revision past the
    /// compaction, so the caller re-lists everything (a full resync) and watches on from there.
    @Test func aWatchFromACompactedRevisionTriggersAFullResync() throws {
        let etcd = try EtcdServer()
        defer { etcd.stop() }
        let store = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/compacted")
        try store.put("pier/k/a", value: "1")
        let seen = try store.list(prefix: "pier/").revision

        // While the watcher is away: writes, a delete, and a compaction past its revision.
        let writer = try EtcdClusterStore(endpoints: [etcd.clientURL], prefix: "/compacted")
        try writer.put("pier/k/b", value: "2")
        try writer.put("pier/k/c", value: "3")
        #expect(try writer.delete("pier/k/a", ifValue: "1") == .deleted)
        let current = try writer.list(prefix: "pier/").revision
        #expect(current > seen + 1)
        let compaction = try runCommand([
            "curl", "-s", "-X", "POST", etcd.clientURL + "/v3/kv/compaction", "-d",
            #"{"revision":"\#(current)","physical":true}"#,
        ])
        #expect(compaction.succeeded, "\(compaction.stderr)")
        // The oracle: etcd itself refuses to read at the watcher's revision now.
        let key = Data("/compacted/pier/k/a".utf8).base64EncodedString()
        let old = try runCommand([
            "curl", "-s", "-X", "POST", etcd.clientURL + "/v3/kv/range", "-d",
            #"{"key":"\#(key)","revision":"\#(seen)"}"#,
        ])
        #expect(old.stdout.contains("compacted"), "\(old.stdout)")

        let began = Date()
        let resumed = try store.waitForChange(after: seen, timeoutMilliseconds: 5000)
        #expect(Date().timeIntervalSince(began) < 2, "the watch waited instead of reporting the compaction")
        #expect(resumed >= current, "resumed at \(resumed), compacted at \(current)")
        // The resync: one list shows the state the missed events led to.
        let relisted = try store.list(prefix: "pier/")
        #expect(relisted.records.map(\.key) == ["pier/k/b", "pier/k/c"])
        #expect(relisted.revision >= current)
        // Watching on from the resync point works: quiet, then woken by the next write.
        #expect(try store.waitForChange(after: relisted.revision, timeoutMilliseconds: 300) == relisted.revision)
        try writer.put("pier/k/d", value: "4")
        #expect(try store.waitForChange(after: relisted.revision, timeoutMilliseconds: 5000) > relisted.revision)
    }

    @Test func unreachableStoreIsATypedTransientError() throws {
        let port = try freeLoopbackPort()
        let store = try EtcdClusterStore(endpoints: ["http://127.0.0.1:\(port)"], timeoutMilliseconds: 500)
        do {
            _ = try store.create("pier/x", value: "y")
            Issue.record("create on a dead endpoint succeeded")
        } catch {
            #expect(error.kind == .unavailable)
            #expect(error.description.contains("127.0.0.1:\(port)"))
            #expect(error.description.contains("refused"))
        }
        #expect(throws: ClusterStoreError.self) { try store.checkHealth() }
    }

    @Test func failsOverToTheNextEndpointWhenOneIsDown() throws {
        let etcd = try EtcdServer()
        defer { etcd.stop() }
        let dead = "http://127.0.0.1:\(try freeLoopbackPort())"
        let store = try EtcdClusterStore(endpoints: [dead, etcd.clientURL])
        try store.put("pier/f", value: "1")
        #expect(try store.get("pier/f")?.value == "1")
        try store.checkHealth()
    }

    @Test func endpointsAndConfigAreValidated() throws {
        #expect(throws: ClusterStoreError.self) { try EtcdClusterStore(endpoints: ["ftp://127.0.0.1:2379"]) }
        #expect(throws: ClusterStoreError.self) { try EtcdClusterStore(endpoints: ["https://a/b:2379"]) }
        #expect(throws: ClusterStoreError.self) { try EtcdClusterStore(endpoints: ["127.0.0.1:2379"]) }
        #expect(throws: ClusterStoreError.self) { try EtcdClusterStore(endpoints: []) }
        let v6 = try HTTPEndpoint(url: "http://[::1]:2379")
        #expect(v6.host == "::1" && v6.port == 2379)
        #expect(try HTTPEndpoint(url: "http://etcd.local").port == 2379)
        let tls = try HTTPEndpoint(url: "https://etcd.local:2379/")
        #expect(tls.isTLS && tls.description == "https://etcd.local:2379")
        #expect(EtcdClusterStore.rangeEnd(Array("/a/".utf8)) == Array("/a0".utf8))
        #expect(EtcdClusterStore.rangeEnd([0x61, 0xff]) == [0x62])

        // Reading the config's JSON is IPAM's (IPAMTests.ConfigTests).
        let config = ClusterStoreConfig(type: .etcd, endpoints: ["http://10.0.0.1:2379"], prefix: "/pier")
        let store = try #require(try config.open() as? EtcdClusterStore)
        #expect(store.prefix == "/pier")
        #expect(store.physical("pier/ipam/n") == "/pier/pier/ipam/n")
    }
}
