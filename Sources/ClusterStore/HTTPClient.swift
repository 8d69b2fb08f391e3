internal import CCurl
import Glibc
import PierState

/// Where an etcd member listens: parsed from `http://host:port` or `https://host:port` (no path).
struct HTTPEndpoint: Sendable, Hashable, CustomStringConvertible {
    let isTLS: Bool
    let host: String
    let port: UInt16

    init(url: String) throws(ClusterStoreError) {
        let invalid = ClusterStoreError(
            .invalidArgument, operation: "parse endpoint",
            message: "invalid etcd endpoint \"\(url)\": want http://host:port or https://host:port")
        let rest: Substring
        if url.hasPrefix("https://") {
            isTLS = true
            rest = url.dropFirst("https://".count)
        } else if url.hasPrefix("http://") {
            isTLS = false
            rest = url.dropFirst("http://".count)
        } else {
            throw invalid
        }
        let authority = rest.hasSuffix("/") ? rest.dropLast() : rest
        let host: Substring
        let portText: Substring
        if authority.hasPrefix("[") {
            // [v6 address]:port
            guard let close = authority.firstIndex(of: "]") else { throw invalid }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { throw invalid }
            portText = after.isEmpty ? "2379" : after.dropFirst()
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
            portText = "2379"
        }
        let hostBytesValid = host.utf8.allSatisfy { byte in
            byte > 0x20 && byte < 0x7f && !"/?#@[]\\\"".utf8.contains(byte)
        }
        guard !host.isEmpty, hostBytesValid, let port = UInt16(portText), port > 0 else { throw invalid }
        self.host = String(host)
        self.port = port
    }

    var description: String {
        let scheme = isTLS ? "https" : "http"
        return host.contains(":") ? "\(scheme)://[\(host)]:\(port)" : "\(scheme)://\(host):\(port)"
    }
}

/// Why an HTTP exchange failed, and how far it got: a caller may repeat a request elsewhere
/// only when it cannot have been processed (`connect`, `tls`).
struct HTTPFailure: Error, CustomStringConvertible {
    enum Stage {
        /// No connection: nothing was sent.
        case connect
        /// The TLS handshake or certificate check failed (either side); nothing was processed.
        case tls
        /// The member refused our credentials (etcd user or password); nothing was processed.
        case refused
        /// The request may have reached the server.
        case exchange
    }

    let message: String
    let stage: Stage
    /// The socket error behind a failed connect or transfer, when there was one.
    var errno: Int32? = nil
    /// The connection broke without saying why (reset, closed, nothing received): on TLS, a
    /// refused certificate may be behind it (`HTTPSession.diagnose`).
    var unexplained = false

    var description: String { message }

    /// A configuration to fix (certificates, CA, credentials), not a member to wait for.
    var isConfigurationProblem: Bool { stage == .tls || stage == .refused }
}

/// A whole HTTP answer.
struct HTTPAnswer {
    let status: Int
    let body: [UInt8]
}

/// libcurl, loaded on first use (see Sources/CCurl): plugins that never reach an etcd store
/// never load it.
enum Curl {
    static func load() throws(ClusterStoreError) {
        var reason = [CChar](repeating: 0, count: 512)
        guard pier_curl_load(&reason, reason.count) != 0 else { return }
        let text = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw ClusterStoreError(
            .io, operation: "load libcurl",
            message: "the etcd store needs libcurl (Debian package libcurl4): \(text)")
    }

    /// Bytes curl delivers, appended to the `ByteSink` behind `context`.
    static let collect: pier_curl_data_callback = { data, size, count, context in
        let total = size * count
        guard let data, let context else { return total }
        let sink = Unmanaged<ByteSink>.fromOpaque(context).takeUnretainedValue()
        sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: total))
        return total
    }
}

/// Where curl's write callback puts a body.
final class ByteSink {
    var bytes: [UInt8] = []
}

/// One curl easy handle with Pier's options: TLS verification against `trustedCAFile`, the
/// client certificate, timeouts, no signals (plugins and `pier agent` may be threaded).
final class CurlHandle {
    let handle: UnsafeMutableRawPointer
    let sink = ByteSink()
    private let errorText = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let security: EtcdSecurity

    init(security: EtcdSecurity, timeoutMilliseconds: Int, streaming: Bool) throws(ClusterStoreError) {
        try Curl.load()
        guard let handle = pier_curl_easy_init() else {
            throw ClusterStoreError(.io, operation: "open etcd client", message: "curl_easy_init failed")
        }
        self.handle = handle
        self.security = security
        errorText.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        pier_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorText)
        pier_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        pier_curl_setopt_pointer(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        pier_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, timeoutMilliseconds)
        // A watch stays open for as long as its owner waits; a unary request has a deadline.
        pier_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, streaming ? 0 : timeoutMilliseconds)
        // A member that vanishes without a reset must still end an idle watch, eventually.
        pier_curl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        pier_curl_setopt_long(handle, CURLOPT_TCP_KEEPIDLE, 10)
        pier_curl_setopt_long(handle, CURLOPT_TCP_KEEPINTVL, 5)
        pier_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
        pier_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
        if let file = security.trustedCAFile { pier_curl_setopt_pointer(handle, CURLOPT_CAINFO, file) }
        if let file = security.certFile { pier_curl_setopt_pointer(handle, CURLOPT_SSLCERT, file) }
        if let file = security.keyFile { pier_curl_setopt_pointer(handle, CURLOPT_SSLKEY, file) }
        pier_curl_setopt_callback(handle, CURLOPT_WRITEFUNCTION, Curl.collect)
        pier_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
    }

    deinit {
        pier_curl_easy_cleanup(handle)
        pier_curl_slist_free_all(headers)
        errorText.deallocate()
    }

    /// Sets up a JSON POST of `body` to `path` on `endpoint`, with etcd's auth token if any.
    func preparePost(_ endpoint: HTTPEndpoint, path: String, body: [UInt8], token: String?) {
        sink.bytes.removeAll(keepingCapacity: true)
        errorText[0] = 0
        pier_curl_setopt_pointer(handle, CURLOPT_URL, endpoint.description + path)
        pier_curl_slist_free_all(headers)
        // "Expect:" stops curl from waiting for a 100-continue etcd never sends.
        var list = pier_curl_slist_append(nil, "Content-Type: application/json")
        list = pier_curl_slist_append(list, "Expect:")
        if let token { list = pier_curl_slist_append(list, "Authorization: \(token)") }
        headers = list
        pier_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, list)
        pier_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
        body.withUnsafeBytes { raw in _ = pier_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, raw.baseAddress) }
    }

    var status: Int {
        var code = 0
        pier_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    /// A failed transfer, classified, with curl's own words and the files it concerns.
    func failure(_ code: CURLcode, endpoint: HTTPEndpoint) -> HTTPFailure {
        let detail = errorText[0] != 0 ? String(cString: errorText) : String(cString: pier_curl_easy_strerror(code))
        var requestBytes = 0
        pier_curl_getinfo_long(handle, CURLINFO_REQUEST_SIZE, &requestBytes)
        let trust = security.trustedCAFile.map { "trustedCAFile \($0)" } ?? "the system's trusted CAs"
        let clientCertificate = security.certFile.map { "certFile \($0)" } ?? "(none)"
        var socketError = 0
        pier_curl_getinfo_long(handle, CURLINFO_OS_ERRNO, &socketError)
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST:
            return HTTPFailure(message: detail, stage: .connect)
        case CURLE_COULDNT_CONNECT:
            // curl's text says "Couldn't connect"; the errno says why (refused, unreachable...).
            let reason = socketError != 0 ? " (\(String(cString: strerror(Int32(socketError)))))" : ""
            return HTTPFailure(
                message: detail + reason, stage: .connect, errno: socketError != 0 ? Int32(socketError) : nil)
        case CURLE_OPERATION_TIMEDOUT:
            return HTTPFailure(message: detail, stage: requestBytes == 0 ? .connect : .exchange)
        case CURLE_SSL_CACERT_BADFILE:
            return HTTPFailure(message: "cannot use \(trust): \(detail)", stage: .tls)
        case CURLE_PEER_FAILED_VERIFICATION:
            // Untrusted issuer, expired certificate or a name not in the certificate: curl says which.
            return HTTPFailure(
                message: "server certificate of \(endpoint.host) rejected (checked against \(trust)): \(detail)",
                stage: .tls)
        case CURLE_SSL_CERTPROBLEM:
            let key = security.keyFile.map { " / keyFile \($0)" } ?? ""
            return HTTPFailure(message: "cannot use \(clientCertificate)\(key): \(detail)", stage: .tls)
        case CURLE_SSL_CONNECT_ERROR, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_HTTP2, CURLE_SSL_CLIENTCERT,
            CURLE_SSL_ISSUER_ERROR, CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CIPHER:
            // With TLS 1.3 the server's verdict on our certificate arrives as an alert after the
            // client's side of the handshake, so a refused certificate surfaces on send or receive
            // (or as a bare reset when the alert is lost: see `HTTPSession.diagnose`); over HTTP/2
            // (negotiated by ALPN) the same failures come back as HTTP/2 errors.
            let isAlert = detail.containsText("alert")
            let transport = code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR || code == CURLE_HTTP2
            guard !transport || isAlert else {
                return HTTPFailure(
                    message: detail, stage: requestBytes == 0 ? .connect : .exchange, unexplained: true)
            }
            let aboutCertificate = detail.containsText("certificate") || detail.containsText("unknown ca")
            if isAlert && aboutCertificate && security.certFile == nil {
                return HTTPFailure(
                    message: "\(endpoint.host) requires a client certificate: set certFile and keyFile (\(detail))",
                    stage: .tls)
            }
            if isAlert && aboutCertificate {
                return HTTPFailure(
                    message: "\(endpoint.host) refused the client certificate \(clientCertificate) "
                        + "(is it signed by a CA the server trusts?): \(detail)",
                    stage: .tls)
            }
            return HTTPFailure(message: "TLS handshake with \(endpoint.host) failed: \(detail)", stage: .tls)
        case CURLE_GOT_NOTHING, CURLE_HTTP2_STREAM:
            return HTTPFailure(message: detail, stage: .exchange, unexplained: true)
        default:
            return HTTPFailure(message: detail, stage: requestBytes == 0 ? .connect : .exchange)
        }
    }
}

/// Unary requests over one reused curl handle, so consecutive requests to a member share one
/// connection (and one TLS handshake).
final class HTTPSession {
    let security: EtcdSecurity
    let timeoutMilliseconds: Int
    private var curl: CurlHandle?

    init(security: EtcdSecurity, timeoutMilliseconds: Int) {
        self.security = security
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    func post(_ endpoint: HTTPEndpoint, path: String, body: [UInt8], token: String?) throws(HTTPFailure)
        -> HTTPAnswer
    {
        let curl: CurlHandle
        if let existing = self.curl {
            curl = existing
        } else {
            do {
                curl = try CurlHandle(security: security, timeoutMilliseconds: timeoutMilliseconds, streaming: false)
            } catch {
                throw HTTPFailure(message: error.message, stage: .connect)
            }
            self.curl = curl
        }
        curl.preparePost(endpoint, path: path, body: body, token: token)
        let code = pier_curl_easy_perform(curl.handle)
        guard code == CURLE_OK else { throw diagnose(curl.failure(code, endpoint: endpoint), endpoint) }
        return HTTPAnswer(status: curl.status, body: curl.sink.bytes)
    }

    /// Explains a TLS connection that broke without a reason. Under TLS 1.3 a server that
    /// refuses our certificate (or our lack of one) sends its alert after our handshake is
    /// done, and a reset can overtake it; TLS 1.2 settles certificates inside the handshake.
    /// So a handshake alone, at TLS 1.2, tells a refused certificate from a broken connection.
    func diagnose(_ failure: HTTPFailure, _ endpoint: HTTPEndpoint) -> HTTPFailure {
        guard endpoint.isTLS, failure.unexplained,
            let probe = try? CurlHandle(security: security, timeoutMilliseconds: timeoutMilliseconds, streaming: false)
        else { return failure }
        pier_curl_setopt_pointer(probe.handle, CURLOPT_URL, endpoint.description)
        pier_curl_setopt_long(probe.handle, CURLOPT_CONNECT_ONLY, 1)
        pier_curl_setopt_long(
            probe.handle, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2) | Int(CURL_SSLVERSION_MAX_TLSv1_2))
        let code = pier_curl_easy_perform(probe.handle)
        guard code != CURLE_OK else { return failure }
        let verdict = probe.failure(code, endpoint: endpoint)
        // Only a verdict about certificates explains the failure (a server that speaks TLS 1.3
        // alone refuses the probe for its own reasons).
        guard verdict.stage == .tls, verdict.message.containsText("certificate") else { return failure }
        return verdict
    }
}

/// A long-lived POST whose answer is read as it arrives (etcd's watch: chunked JSON lines),
/// driven through curl's multi interface so a reader can stop at a deadline and come back
/// later to the same open stream.
final class HTTPStream {
    let endpoint: HTTPEndpoint
    private let session: HTTPSession
    private let curl: CurlHandle
    private let multi: UnsafeMutableRawPointer
    /// curl's result once the transfer has ended (the server closed it, or it failed).
    private(set) var result: CURLcode?
    private var consumed = 0

    init(_ endpoint: HTTPEndpoint, path: String, body: [UInt8], token: String?, session: HTTPSession)
        throws(HTTPFailure)
    {
        self.endpoint = endpoint
        self.session = session
        do {
            curl = try CurlHandle(
                security: session.security, timeoutMilliseconds: session.timeoutMilliseconds, streaming: true)
        } catch {
            throw HTTPFailure(message: error.message, stage: .connect)
        }
        guard let multi = pier_curl_multi_init() else {
            throw HTTPFailure(message: "curl_multi_init failed", stage: .connect)
        }
        self.multi = multi
        curl.preparePost(endpoint, path: path, body: body, token: token)
        pier_curl_multi_add_handle(multi, curl.handle)
    }

    deinit {
        pier_curl_multi_remove_handle(multi, curl.handle)
        pier_curl_multi_cleanup(multi)
    }

    /// The HTTP status once the response head has arrived; 0 before.
    var status: Int { curl.status }

    /// Moves the transfer on, waiting at most until `deadline` for something to happen.
    func pump(until deadline: Int) {
        var running: Int32 = 0
        pier_curl_multi_perform(multi, &running)
        if result == nil {
            var code = CURLE_OK
            if pier_curl_multi_finished(multi, &code) != 0 { result = code }
        }
        let remaining = deadline - monotonicMilliseconds()
        guard result == nil, remaining > 0 else { return }
        pier_curl_multi_poll(multi, Int32(clamping: min(remaining, 1000)))
        pier_curl_multi_perform(multi, &running)
        var code = CURLE_OK
        if pier_curl_multi_finished(multi, &code) != 0 { result = code }
    }

    /// Waits (until `deadline`) for the response head; throws when the stream could not open.
    func open(deadline: Int) throws(HTTPFailure) {
        while status == 0 && result == nil && monotonicMilliseconds() < deadline { pump(until: deadline) }
        if status == 0 {
            if let result, result != CURLE_OK {
                throw session.diagnose(curl.failure(result, endpoint: endpoint), endpoint)
            }
            throw HTTPFailure(message: "no answer within the timeout", stage: .exchange)
        }
    }

    /// Complete lines received since the last call (without their newline).
    func lines() -> [[UInt8]] {
        var lines: [[UInt8]] = []
        let sink = curl.sink
        while let newline = sink.bytes[consumed...].firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(Array(sink.bytes[consumed..<newline]))
            consumed = newline + 1
        }
        if consumed == sink.bytes.count {
            sink.bytes.removeAll(keepingCapacity: true)
            consumed = 0
        }
        return lines
    }

    /// The body so far, for an error answer.
    var text: String { String(decoding: curl.sink.bytes, as: UTF8.self) }

    /// Why the stream ended.
    func endFailure() -> HTTPFailure {
        guard let result, result != CURLE_OK else {
            return HTTPFailure(message: "watch stream ended", stage: .exchange)
        }
        return curl.failure(result, endpoint: endpoint)
    }
}

/// Milliseconds on CLOCK_MONOTONIC, for deadlines that wall-clock jumps cannot move.
func monotonicMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}
