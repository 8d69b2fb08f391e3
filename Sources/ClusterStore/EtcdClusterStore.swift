import JSON
import PierState

/// The cluster store on etcd v3, through its HTTP/JSON gateway (`/v3/kv/*`, `/v3/watch`), so
/// plugins need no gRPC: each operation is one POST through libcurl, which brings TLS (server
/// verification, client certificates) and keeps the connection for the next request. Every
/// conditional write is a single `Txn`, as `ClusterStore` promises.
///
/// Keys are stored as `<prefix>/<key>`; revisions are etcd's (`mod_revision`, header revision).
public final class EtcdClusterStore: ClusterStore {
    let endpoints: [HTTPEndpoint]
    public let prefix: String
    public let timeoutMilliseconds: Int
    let security: EtcdSecurity
    let session: HTTPSession
    /// The member that answered last: requests start there, so a dead first endpoint costs
    /// one failed connect rather than one per request.
    var preferredEndpoint = 0
    /// etcd's auth token for `security.username`, fetched on first use and again when refused.
    var token: String?
    /// The watch left open by the last quiet `waitForChange` (one watcher per store object).
    var watchStream: EtcdWatchStream?

    /// Checks the endpoints and the TLS files (present, readable, PEM); contacts nothing yet.
    public init(
        endpoints: [String], prefix: String = "", timeoutMilliseconds: Int = 3000,
        security: EtcdSecurity = EtcdSecurity()
    ) throws(ClusterStoreError) {
        guard !endpoints.isEmpty else {
            throw ClusterStoreError(.invalidArgument, operation: "open etcd store", message: "no endpoints given")
        }
        var parsed: [HTTPEndpoint] = []
        for url in endpoints { parsed.append(try HTTPEndpoint(url: url)) }
        try security.validate(endpoints: parsed)
        var trimmed = prefix
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        if !trimmed.isEmpty { try StoreKey.validate(String(trimmed.drop { $0 == "/" }), operation: "etcd prefix") }
        self.endpoints = parsed
        self.prefix = trimmed
        self.timeoutMilliseconds = max(100, timeoutMilliseconds)
        self.security = security
        self.session = HTTPSession(security: security, timeoutMilliseconds: self.timeoutMilliseconds)
    }

    public var endpointDescription: String { endpoints.map(\.description).joined(separator: ",") }

    // MARK: ClusterStore

    public func get(_ key: String) throws(ClusterStoreError) -> StoreRecord? {
        try StoreKey.validate(key, operation: "get")
        let response: EtcdRangeResponse = try call(
            "/v3/kv/range", EtcdRangeRequest(key: Base64.encode(physical(key))), operation: "get \(key)",
            idempotent: true)
        return try response.kvs?.first.map { kv throws(ClusterStoreError) in try record(kv, operation: "get \(key)") }
    }

    public func list(prefix keyPrefix: String) throws(ClusterStoreError) -> StoreSnapshot {
        let operation = "list \(keyPrefix)"
        let start = Array(physical(keyPrefix).utf8)
        let request = EtcdRangeRequest(key: Base64.encode(start), range_end: Base64.encode(Self.rangeEnd(start)))
        let response: EtcdRangeResponse = try call("/v3/kv/range", request, operation: operation, idempotent: true)
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
        let response: EtcdPutResponse = try call("/v3/kv/put", request, operation: operation, idempotent: true)
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
            operation: "health check", idempotent: true)
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

    /// POSTs `request` to the members in turn, from the one that answered last, until one
    /// answers. A request that may have been processed moves on only when repeating it is
    /// harmless (`idempotent`: reads, unconditional puts); a conditional write is not repeated.
    func call<Response: EtcdResponseBody>(
        _ path: String, _ request: some EtcdRequestBody, operation: String, idempotent: Bool = false
    ) throws(ClusterStoreError) -> Response {
        // A missing libcurl is this host's problem, not the members': say so once.
        try Curl.load()
        let body = request.json.encodedBytes
        var failures: [String] = []
        var misconfigured = false
        var lastErrno: Int32?
        for offset in 0..<endpoints.count {
            let index = (preferredEndpoint + offset) % endpoints.count
            let endpoint = endpoints[index]
            let answer: HTTPAnswer
            do throws(HTTPFailure) {
                answer = try exchange(endpoint, path: path, body: body)
            } catch {
                failures.append("\(endpoint): \(error.message)")
                lastErrno = error.errno ?? lastErrno
                if error.isConfigurationProblem { misconfigured = true }
                if error.stage == .exchange && !idempotent { break }
                continue
            }
            // A member without a leader or quorum answers 5xx; another may have one.
            if answer.status >= 500 && idempotent && offset + 1 < endpoints.count {
                failures.append("\(endpoint): HTTP \(answer.status)")
                continue
            }
            preferredEndpoint = index
            return try decode(answer, endpoint: endpoint, operation: operation)
        }
        throw ClusterStoreError(
            misconfigured ? .invalidArgument : .unavailable, operation: operation,
            message: (misconfigured ? "etcd refused the TLS setup or credentials (" : "etcd unreachable (")
                + failures.joined(separator: "; ") + ")", errno: lastErrno)
    }

    /// One POST with the auth token (fetched first when there is none), fetched anew and
    /// repeated once when etcd no longer accepts it (expired, or the member restarted and
    /// forgot its simple tokens). A refused token means the request was not processed.
    func exchange(_ endpoint: HTTPEndpoint, path: String, body: [UInt8]) throws(HTTPFailure) -> HTTPAnswer {
        guard security.username != nil else { return try session.post(endpoint, path: path, body: body, token: nil) }
        if token == nil, let refusal = try authenticate(endpoint) { return refusal }
        let answer = try session.post(endpoint, path: path, body: body, token: token)
        guard Self.isStaleToken(answer) else { return answer }
        token = nil
        if let refusal = try authenticate(endpoint) { return refusal }
        return try session.post(endpoint, path: path, body: body, token: token)
    }

    /// Fetches a token for the configured user into `token`; returns etcd's answer instead
    /// when it refuses (wrong password, auth not enabled), for `decode` to report.
    func authenticate(_ endpoint: HTTPEndpoint) throws(HTTPFailure) -> HTTPAnswer? {
        let request = EtcdAuthenticateRequest(name: security.username ?? "", password: security.password ?? "")
        let answer = try session.post(
            endpoint, path: "/v3/auth/authenticate", body: request.json.encodedBytes, token: nil)
        guard answer.status == 200, let document = try? JSONValue(parsing: answer.body),
            let token = EtcdAuthenticateResponse(json: document)?.token, !token.isEmpty
        else { return answer }
        self.token = token
        return nil
    }

    /// etcd's answers to a token it no longer honours.
    static func isStaleToken(_ answer: HTTPAnswer) -> Bool {
        guard answer.status != 200 else { return false }
        let text = String(decoding: answer.body, as: UTF8.self)
        return answer.status == 401 || text.containsText("invalid auth token") || text.containsText("auth store is old")
    }

    private func decode<Response: EtcdResponseBody>(
        _ answer: HTTPAnswer, endpoint: HTTPEndpoint, operation: String
    ) throws(ClusterStoreError) -> Response {
        guard answer.status == 200 else {
            let detail = (try? JSONValue(parsing: answer.body)).flatMap(EtcdErrorBody.init(json:))?.text
            var text =
                "etcd \(endpoint) answered HTTP \(answer.status): "
                + (detail ?? String(decoding: answer.body, as: UTF8.self))
            let kind: ClusterStoreError.Kind
            switch answer.status {
            case 503, 500...:
                // No leader or no quorum: transient.
                kind = .unavailable
            case 401, 403:
                kind = .invalidArgument
                text += security.username.map { " (user \($0))" } ?? " (set username and password)"
            case 400 where text.containsText("user name is empty") || text.containsText("authentication failed"):
                kind = .invalidArgument
                text += security.username.map { " (user \($0))" } ?? " (set username and password)"
            default:
                kind = .io
            }
            throw ClusterStoreError(kind, operation: operation, message: text)
        }
        let document: JSONValue
        do {
            document = try JSONValue(parsing: answer.body)
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
