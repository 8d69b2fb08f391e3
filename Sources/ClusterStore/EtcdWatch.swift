import JSON

/// An open `/v3/watch` stream over the store's whole key space. The stream is JSON, one
/// message per line: first `created`, then batches of `events`. A wait that times out keeps
/// it open, so an idle watcher holds one connection instead of reconnecting per wait.
final class EtcdWatchStream {
    let stream: HTTPStream
    /// The revision the stream started at: it serves waits "after startRevision - 1" only.
    let startRevision: UInt64

    init(stream: HTTPStream, startRevision: UInt64) {
        self.stream = stream
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
            for line in stream.lines() {
                guard let document = try? JSONValue(parsing: line), let message = EtcdWatchMessage(json: document)
                else { continue }
                if let error = message.error {
                    throw HTTPFailure(message: "watch failed: \(error.text)", stage: .exchange)
                }
                guard let result = message.result else { continue }
                let compactRevision = result.compact_revision.flatMap { UInt64($0) } ?? 0
                if !(result.events ?? []).isEmpty || compactRevision > 0 || result.canceled == true {
                    // A watch cancelled by compaction carries no current revision in its header,
                    // only the compaction's: report at least that one, so the caller's resync
                    // (a re-list) and its next wait start past the compacted history instead
                    // of stepping through it one cancelled watch at a time.
                    let revision = result.header?.revisionNumber ?? 0
                    return .changed(max(revision, compactRevision, startRevision))
                }
            }
            // A member restart or failure ends the stream: the caller reconnects from
            // `startRevision`, so etcd replays whatever happened meanwhile.
            if stream.result != nil { throw stream.endFailure() }
            // The deadline ending a quiet wait is the normal way out.
            if monotonicMilliseconds() >= deadline { return .quiet }
            stream.pump(until: deadline)
        }
    }
}

/// `waitForChange` on etcd: resumes the open stream when it started right after `revision`,
/// else opens one from `revision + 1` (etcd replays every event since, so none is missed),
/// on the first member that accepts it.
struct EtcdWatch {
    let store: EtcdClusterStore

    func wait(after revision: UInt64, timeoutMilliseconds: Int) throws(ClusterStoreError) -> UInt64 {
        try Curl.load()
        let deadline = monotonicMilliseconds() + max(timeoutMilliseconds, 1)
        var failures: [String] = []
        if let stream = store.watchStream, stream.startRevision == revision + 1 {
            do throws(HTTPFailure) {
                return try outcome(stream.next(deadline: deadline), after: revision)
            } catch {
                // A broken stream (a member restarted) is replaced below.
                failures.append("\(stream.stream.endpoint): \(error.message)")
            }
        }
        store.watchStream = nil
        var misconfigured = false
        for offset in 0..<store.endpoints.count {
            let index = (store.preferredEndpoint + offset) % store.endpoints.count
            let endpoint = store.endpoints[index]
            do throws(HTTPFailure) {
                let stream = try open(endpoint, from: revision + 1)
                store.preferredEndpoint = index
                store.watchStream = stream
                return try outcome(stream.next(deadline: deadline), after: revision)
            } catch {
                store.watchStream = nil
                if error.isConfigurationProblem { misconfigured = true }
                failures.append("\(endpoint): \(error.message)")
            }
        }
        throw ClusterStoreError(
            misconfigured ? .invalidArgument : .unavailable, operation: "watch after \(revision)",
            message: (misconfigured ? "etcd refused the TLS setup or credentials (" : "etcd unreachable (")
                + failures.joined(separator: "; ") + ")")
    }

    private func outcome(_ outcome: EtcdWatchStream.Outcome, after revision: UInt64) -> UInt64 {
        switch outcome {
        case .quiet: return revision
        case .changed(let current):
            store.watchStream = nil
            return max(current, revision + 1)
        }
    }

    /// Starts a watch on `endpoint` and waits for its answer's head (within the store's
    /// timeout), fetching a fresh auth token once if the member refuses the current one.
    private func open(_ endpoint: HTTPEndpoint, from start: UInt64) throws(HTTPFailure) -> EtcdWatchStream {
        let keyStart = Array(store.physical("").utf8)
        let request = EtcdWatchRequest(
            create_request: EtcdWatchCreate(
                key: Base64.encode(keyStart), range_end: Base64.encode(EtcdClusterStore.rangeEnd(keyStart)),
                start_revision: String(start)))
        let body = request.json.encodedBytes
        var refreshed = false
        while true {
            if store.security.username != nil && store.token == nil {
                if let refusal = try store.authenticate(endpoint) {
                    throw HTTPFailure(
                        message: "authentication as \(store.security.username ?? "") refused: HTTP \(refusal.status) "
                            + String(decoding: refusal.body, as: UTF8.self),
                        stage: .refused)
                }
            }
            let deadline = monotonicMilliseconds() + store.timeoutMilliseconds
            let stream = try HTTPStream(
                endpoint, path: "/v3/watch", body: body, token: store.token, session: store.session)
            try stream.open(deadline: deadline)
            if stream.status == 200 { return EtcdWatchStream(stream: stream, startRevision: start) }
            // An error answer is short: read it whole for the message.
            while stream.result == nil && monotonicMilliseconds() < deadline { stream.pump(until: deadline) }
            let answer = HTTPAnswer(status: stream.status, body: Array(stream.text.utf8))
            if store.security.username != nil && !refreshed && EtcdClusterStore.isStaleToken(answer) {
                store.token = nil
                refreshed = true
                continue
            }
            throw HTTPFailure(message: "watch answered HTTP \(answer.status): \(stream.text)", stage: .exchange)
        }
    }
}
