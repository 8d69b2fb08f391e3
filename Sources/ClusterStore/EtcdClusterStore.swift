import JSON

/// The cluster store on etcd v3, through its HTTP/JSON gateway (`/v3/kv/*`, `/v3/watch`), so
/// plugins need neither gRPC nor an HTTP stack: each operation is one POST on a fresh TCP
/// connection. Every conditional write is a single `Txn`, as `ClusterStore` promises.
///
/// Keys are stored as `<prefix>/<key>`; revisions are etcd's (`mod_revision`, header revision).
public final class EtcdClusterStore: ClusterStore {
    let endpoints: [HTTPEndpoint]
    public let prefix: String
    public let timeoutMilliseconds: Int
    /// The watch left open by the last quiet `waitForChange` (one watcher per store object).
    var watchStream: EtcdWatchStream?

    public init(endpoints: [String], prefix: String = "", timeoutMilliseconds: Int = 3000) throws(ClusterStoreError) {
        guard !endpoints.isEmpty else {
            throw ClusterStoreError(.invalidArgument, operation: "open etcd store", message: "no endpoints given")
        }
        var parsed: [HTTPEndpoint] = []
        for url in endpoints { parsed.append(try HTTPEndpoint(url: url)) }
        var trimmed = prefix
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        if !trimmed.isEmpty { try StoreKey.validate(String(trimmed.drop { $0 == "/" }), operation: "etcd prefix") }
        self.endpoints = parsed
        self.prefix = trimmed
        self.timeoutMilliseconds = max(100, timeoutMilliseconds)
    }

    public var endpointDescription: String { endpoints.map(\.description).joined(separator: ",") }

    // MARK: ClusterStore

    public func get(_ key: String) throws(ClusterStoreError) -> StoreRecord? {
        try StoreKey.validate(key, operation: "get")
        let response: EtcdRangeResponse = try call(
            "/v3/kv/range", EtcdRangeRequest(key: Base64.encode(physical(key))), operation: "get \(key)")
        return try response.kvs?.first.map { kv throws(ClusterStoreError) in try record(kv, operation: "get \(key)") }
    }

    public func list(prefix keyPrefix: String) throws(ClusterStoreError) -> StoreSnapshot {
        let operation = "list \(keyPrefix)"
        let start = Array(physical(keyPrefix).utf8)
        let request = EtcdRangeRequest(key: Base64.encode(start), range_end: Base64.encode(Self.rangeEnd(start)))
        let response: EtcdRangeResponse = try call("/v3/kv/range", request, operation: operation)
        var records: [StoreRecord] = []
        for kv in response.kvs ?? [] { records.append(try record(kv, operation: operation)) }
        return StoreSnapshot(
            records: records.sorted { $0.key < $1.key }, revision: response.header?.revisionNumber ?? 0)
    }

    public func create(_ key: String, value: String) throws(ClusterStoreError) -> StoreWriteResult {
        let operation = "create \(key)"
        try StoreKey.validate(key, operation: operation)
        let encoded = Base64.encode(physical(key))
        let compare = EtcdCompare(key: encoded, target: "CREATE", create_revision: "0")
        return try conditionalPut(key, value: value, compare: compare, operation: operation)
    }

    public func compareAndSwap(_ key: String, expectedRevision: UInt64, value: String) throws(ClusterStoreError)
        -> StoreWriteResult
    {
        let operation = "compare-and-swap \(key)@\(expectedRevision)"
        try StoreKey.validate(key, operation: operation)
        let encoded = Base64.encode(physical(key))
        let compare = EtcdCompare(key: encoded, target: "MOD", mod_revision: String(expectedRevision))
        return try conditionalPut(key, value: value, compare: compare, operation: operation)
    }

    @discardableResult
    public func put(_ key: String, value: String) throws(ClusterStoreError) -> StoreRecord {
        let operation = "put \(key)"
        try StoreKey.validate(key, operation: operation)
        let request = EtcdPutRequest(key: Base64.encode(physical(key)), value: Base64.encode(value))
        let response: EtcdPutResponse = try call("/v3/kv/put", request, operation: operation)
        return StoreRecord(key: key, value: value, revision: response.header?.revisionNumber ?? 0)
    }

    public func delete(_ key: String, ifValue expectedValue: String) throws(ClusterStoreError) -> StoreDeleteResult {
        let operation = "delete \(key)"
        try StoreKey.validate(key, operation: operation)
        let encoded = Base64.encode(physical(key))
        // etcd fails a VALUE compare on a missing key, so "absent" lands in the failure branch.
        let request = EtcdTxnRequest(
            compare: [EtcdCompare(key: encoded, target: "VALUE", value: Base64.encode(expectedValue))],
            success: [EtcdRequestOp(request_delete_range: EtcdDeleteRequest(key: encoded))],
            failure: [EtcdRequestOp(request_range: EtcdRangeRequest(key: encoded))])
        let response: EtcdTxnResponse = try call("/v3/kv/txn", request, operation: operation)
        if response.succeeded == true { return .deleted }
        guard let kv = response.responses?.first?.response_range?.kvs?.first else { return .absent }
        return .notOwner(current: try record(kv, operation: operation))
    }

    public func waitForChange(after revision: UInt64, timeoutMilliseconds: Int) throws(ClusterStoreError) -> UInt64 {
        try EtcdWatch(store: self).wait(after: revision, timeoutMilliseconds: timeoutMilliseconds)
    }

    public func checkHealth() throws(ClusterStoreError) {
        // A linearizable read needs a leader and a quorum, which is what writes need too.
        let start = Array(physical("pier").utf8)
        let _: EtcdRangeResponse = try call(
            "/v3/kv/range", EtcdRangeRequest(key: Base64.encode(start), count_only: true),
            operation: "health check")
    }

    // MARK: Internals

    private func conditionalPut(_ key: String, value: String, compare: EtcdCompare, operation: String)
        throws(ClusterStoreError) -> StoreWriteResult
    {
        let request = EtcdTxnRequest(
            compare: [compare],
            success: [EtcdRequestOp(request_put: EtcdPutRequest(key: compare.key, value: Base64.encode(value)))],
            failure: [EtcdRequestOp(request_range: EtcdRangeRequest(key: compare.key))])
        let response: EtcdTxnResponse = try call("/v3/kv/txn", request, operation: operation)
        if response.succeeded == true {
            return .written(StoreRecord(key: key, value: value, revision: response.header?.revisionNumber ?? 0))
        }
        let current = response.responses?.first?.response_range?.kvs?.first
        return .conflict(
            current: try current.map { kv throws(ClusterStoreError) in try record(kv, operation: operation) })
    }

    func physical(_ key: String) -> String { prefix + "/" + key }

    private func record(_ kv: EtcdKeyValue, operation: String) throws(ClusterStoreError) -> StoreRecord {
        guard let name = Base64.decode(kv.key), name.hasPrefix(prefix + "/"), let value = Base64.decode(kv.value)
        else {
            throw ClusterStoreError(.corrupt, operation: operation, message: "undecodable key or value from etcd")
        }
        let key = String(name.dropFirst(prefix.count + 1))
        return StoreRecord(key: key, value: value, revision: kv.mod_revision.flatMap { UInt64($0) } ?? 0)
    }

    /// The smallest key after every key starting with `start` (etcd's prefix range end).
    static func rangeEnd(_ start: [UInt8]) -> [UInt8] {
        var end = start
        while let last = end.last {
            if last < 0xff {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]
    }

    /// POSTs `request` to each endpoint in turn until one answers. Only a failure to connect
    /// moves on to the next endpoint: a request that may have reached a server is not repeated.
    func call<Response: EtcdResponseBody>(_ path: String, _ request: some EtcdRequestBody, operation: String)
        throws(ClusterStoreError) -> Response
    {
        let body = request.json.encodedBytes
        var failures: [String] = []
        var lastErrno: Int32?
        for endpoint in endpoints {
            let deadline = monotonicMilliseconds() + timeoutMilliseconds
            var answer: (status: Int, body: [UInt8])?
            do throws(HTTPFailure) {
                let connection = try HTTPConnection(to: endpoint, timeoutMilliseconds: timeoutMilliseconds)
                let head = try HTTPClient.request(
                    method: "POST", path: path, body: body, endpoint: endpoint, connection: connection,
                    deadline: deadline)
                answer = (head.status, try HTTPClient.body(of: head, connection: connection, deadline: deadline))
            } catch {
                failures.append("\(endpoint): \(error.message)")
                lastErrno = error.errno
                if !error.beforeSending { break }
            }
            if let answer {
                return try decode(answer.body, status: answer.status, endpoint: endpoint, operation: operation)
            }
        }
        throw ClusterStoreError(
            .unavailable, operation: operation, message: "etcd unreachable (\(failures.joined(separator: "; ")))",
            errno: lastErrno)
    }

    private func decode<Response: EtcdResponseBody>(
        _ answer: [UInt8], status: Int, endpoint: HTTPEndpoint, operation: String
    ) throws(ClusterStoreError) -> Response {
        guard status == 200 else {
            let detail = (try? JSONValue(parsing: answer)).flatMap(EtcdErrorBody.init(json:))?.text
            let text = "etcd \(endpoint) answered HTTP \(status): \(detail ?? String(decoding: answer, as: UTF8.self))"
            // 503 and gRPC "unavailable" (14) mean no leader or no quorum: transient.
            let kind: ClusterStoreError.Kind = status == 503 || status >= 500 ? .unavailable : .io
            throw ClusterStoreError(kind, operation: operation, message: text)
        }
        let document: JSONValue
        do {
            document = try JSONValue(parsing: answer)
        } catch {
            throw ClusterStoreError(.corrupt, operation: operation, message: "unexpected answer from etcd: \(error)")
        }
        guard let response = Response(json: document) else {
            throw ClusterStoreError(
                .corrupt, operation: operation, message: "unexpected answer from etcd: expected a JSON object")
        }
        return response
    }
}
