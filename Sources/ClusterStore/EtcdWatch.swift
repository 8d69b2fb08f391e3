import JSON

#if canImport(Glibc)
    import Glibc
#endif

/// An open `/v3/watch` stream over the store's whole key space. The stream is chunked JSON,
/// one message per line: first `created`, then batches of `events`. A wait that times out
/// keeps it open, so an idle watcher holds one connection instead of reconnecting per wait.
final class EtcdWatchStream {
    let connection: HTTPConnection
    let head: HTTPResponseHead
    /// The revision the stream started at: it serves waits "after startRevision - 1" only.
    let startRevision: UInt64
    private var pending: [UInt8] = []

    init(connection: HTTPConnection, head: HTTPResponseHead, startRevision: UInt64) {
        self.connection = connection
        self.head = head
        self.startRevision = startRevision
    }

    enum Outcome {
        /// Something changed (events, compaction or cancel): re-list; the stream is spent.
        case changed(UInt64)
        /// Nothing in our key space changed before the deadline; the stream stays usable.
        case quiet
    }

    func next(deadline: Int) throws(HTTPFailure) -> Outcome {
        while true {
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeFirst(newline + 1)
                guard let document = try? JSONValue(parsing: line), let message = EtcdWatchMessage(json: document)
                else { continue }
                if let error = message.error {
                    throw HTTPFailure(message: "watch failed: \(error.text)", errno: nil, beforeSending: false)
                }
                guard let result = message.result else { continue }
                let compacted = (result.compact_revision.flatMap { UInt64($0) } ?? 0) > 0
                if !(result.events ?? []).isEmpty || compacted || result.canceled == true {
                    let revision = result.header?.revisionNumber ?? 0
                    return .changed(max(revision, startRevision))
                }
            }
            let chunk: [UInt8]?
            do {
                chunk =
                    head.isChunked
                    ? try HTTPClient.nextChunk(connection: connection, deadline: deadline)
                    : Array(try connection.readLine(deadline: deadline).utf8) + [UInt8(ascii: "\n")]
            } catch {
                // The deadline ending a quiet wait is the normal way out.
                if error.errno == ETIMEDOUT && error.message == "timed out" { return .quiet }
                throw error
            }
            guard let chunk else {
                throw HTTPFailure(message: "watch stream ended", errno: nil, beforeSending: false)
            }
            pending += chunk
        }
    }
}

/// `waitForChange` on etcd: resumes the open stream when it started right after `revision`,
/// else opens one from `revision + 1` (etcd replays every event since, so none is missed).
struct EtcdWatch {
    let store: EtcdClusterStore

    func wait(after revision: UInt64, timeoutMilliseconds: Int) throws(ClusterStoreError) -> UInt64 {
        let deadline = monotonicMilliseconds() + max(timeoutMilliseconds, 1)
        var failures: [String] = []
        if let stream = store.watchStream, stream.startRevision == revision + 1 {
            do throws(HTTPFailure) {
                return try outcome(stream.next(deadline: deadline), after: revision)
            } catch {
                // A broken stream is replaced below.
                store.watchStream = nil
            }
        }
        store.watchStream = nil
        for endpoint in store.endpoints {
            do throws(HTTPFailure) {
                let stream = try open(endpoint, from: revision + 1)
                store.watchStream = stream
                return try outcome(stream.next(deadline: deadline), after: revision)
            } catch {
                store.watchStream = nil
                failures.append("\(endpoint): \(error.message)")
            }
        }
        throw ClusterStoreError(
            .unavailable, operation: "watch after \(revision)",
            message: "etcd unreachable (\(failures.joined(separator: "; ")))")
    }

    private func outcome(_ outcome: EtcdWatchStream.Outcome, after revision: UInt64) -> UInt64 {
        switch outcome {
        case .quiet: return revision
        case .changed(let current):
            store.watchStream = nil
            return max(current, revision + 1)
        }
    }

    private func open(_ endpoint: HTTPEndpoint, from start: UInt64) throws(HTTPFailure) -> EtcdWatchStream {
        let keyStart = Array(store.physical("").utf8)
        let request = EtcdWatchRequest(
            create_request: EtcdWatchCreate(
                key: Base64.encode(keyStart), range_end: Base64.encode(EtcdClusterStore.rangeEnd(keyStart)),
                start_revision: String(start)))
        let connection = try HTTPConnection(to: endpoint, timeoutMilliseconds: store.timeoutMilliseconds)
        let head = try HTTPClient.request(
            method: "POST", path: "/v3/watch", body: request.json.encodedBytes, endpoint: endpoint,
            connection: connection,
            deadline: monotonicMilliseconds() + store.timeoutMilliseconds)
        guard head.status == 200 else {
            throw HTTPFailure(message: "watch answered HTTP \(head.status)", errno: nil, beforeSending: false)
        }
        return EtcdWatchStream(connection: connection, head: head, startRevision: start)
    }
}
