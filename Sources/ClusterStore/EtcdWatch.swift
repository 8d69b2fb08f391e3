import FoundationEssentials

/// `waitForChange` on etcd: a streaming `/v3/watch` over the store's whole key space from the
/// next revision, held open until the first event or the timeout. The stream is chunked JSON,
/// one message per line: first `created`, then batches of `events`.
struct EtcdWatch {
    let store: EtcdClusterStore

    func wait(after revision: UInt64, timeoutMilliseconds: Int) throws(ClusterStoreError) -> UInt64 {
        let operation = "watch after \(revision)"
        let start = Array(store.physical("").utf8)
        let request = EtcdWatchRequest(
            create_request: EtcdWatchCreate(
                key: Base64.encode(start), range_end: Base64.encode(EtcdClusterStore.rangeEnd(start)),
                start_revision: String(revision + 1)))
        let body: [UInt8]
        do {
            body = Array(try JSONEncoder().encode(request))
        } catch {
            throw ClusterStoreError(.invalidArgument, operation: operation, message: "cannot encode watch: \(error)")
        }
        var failures: [String] = []
        for endpoint in store.endpoints {
            do throws(HTTPFailure) {
                return try stream(body, endpoint: endpoint, after: revision, timeout: timeoutMilliseconds)
            } catch {
                failures.append("\(endpoint): \(error.message)")
            }
        }
        throw ClusterStoreError(
            .unavailable, operation: operation, message: "etcd unreachable (\(failures.joined(separator: "; ")))")
    }

    private func stream(_ body: [UInt8], endpoint: HTTPEndpoint, after revision: UInt64, timeout: Int)
        throws(HTTPFailure) -> UInt64
    {
        let deadline = monotonicMilliseconds() + max(timeout, 1)
        let connection = try HTTPConnection(to: endpoint, timeoutMilliseconds: store.timeoutMilliseconds)
        let head = try HTTPClient.request(
            method: "POST", path: "/v3/watch", body: body, endpoint: endpoint, connection: connection,
            deadline: monotonicMilliseconds() + store.timeoutMilliseconds)
        guard head.status == 200 else {
            throw HTTPFailure(message: "watch answered HTTP \(head.status)", errno: nil, beforeSending: false)
        }
        var seen = revision
        var pending: [UInt8] = []
        while true {
            let chunk: [UInt8]?
            do {
                chunk =
                    head.isChunked
                    ? try HTTPClient.nextChunk(connection: connection, deadline: deadline)
                    : try connection.readLine(deadline: deadline).utf8.map { $0 } + [UInt8(ascii: "\n")]
            } catch {
                // The timeout ending a quiet watch is the normal way out.
                if error.errno == ETIMEDOUT { return seen }
                throw error
            }
            guard let chunk else { return seen }
            pending += chunk
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeFirst(newline + 1)
                guard let message = try? JSONDecoder().decode(EtcdWatchMessage.self, from: Data(line)) else { continue }
                if let error = message.error {
                    throw HTTPFailure(message: "watch failed: \(error.text)", errno: nil, beforeSending: false)
                }
                guard let result = message.result else { continue }
                seen = max(seen, result.header?.revisionNumber ?? 0)
                // Events, a compaction past our revision or a cancel all mean "re-list now".
                let compacted = result.compact_revision.flatMap { UInt64($0) } ?? 0 > 0
                if !(result.events ?? []).isEmpty || compacted || result.canceled == true {
                    return max(seen, revision + 1)
                }
            }
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
