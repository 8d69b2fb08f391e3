import Glibc

/// Where an HTTP server listens: parsed from `http://host:port` (no TLS, no path).
struct HTTPEndpoint: Sendable, Hashable, CustomStringConvertible {
    let host: String
    let port: UInt16

    init(url: String) throws(ClusterStoreError) {
        let invalid = ClusterStoreError(
            .invalidArgument, operation: "parse endpoint",
            message: "invalid etcd endpoint \"\(url)\": want http://host:port")
        guard url.hasPrefix("http://") else {
            if url.hasPrefix("https://") {
                throw ClusterStoreError(
                    .invalidArgument, operation: "parse endpoint",
                    message: "etcd endpoint \"\(url)\": https is not supported; use http on a trusted network")
            }
            throw invalid
        }
        var rest = Substring(url.dropFirst("http://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        let host: Substring
        let portText: Substring
        if rest.hasPrefix("[") {
            // [v6 address]:port
            guard let close = rest.firstIndex(of: "]") else { throw invalid }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            portText = after.hasPrefix(":") ? after.dropFirst() : "2379"
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
            portText = "2379"
        }
        guard !host.isEmpty, !host.contains("/"), let port = UInt16(portText), port > 0 else { throw invalid }
        self.host = String(host)
        self.port = port
    }

    var description: String { host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)" }
}

/// Why an HTTP exchange failed; `beforeSending` tells a caller whether the request may have
/// reached the server (only then is retrying a write elsewhere unsafe).
struct HTTPFailure: Error, CustomStringConvertible {
    let message: String
    let errno: Int32?
    let beforeSending: Bool

    var description: String { message }
}

/// One HTTP/1.1 exchange per TCP connection (`Connection: close`): a plugin makes a handful of
/// requests to a nearby etcd, so connection reuse buys little and a blocking socket with poll
/// deadlines keeps the client tiny and free of threads.
final class HTTPConnection {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var position = 0
    private var finished = false

    /// Connects within `timeoutMilliseconds` (resolving the host name, if it is one).
    init(to endpoint: HTTPEndpoint, timeoutMilliseconds: Int) throws(HTTPFailure) {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard status == 0, let first = list else {
            throw HTTPFailure(
                message: "cannot resolve \(endpoint.host): \(String(cString: gai_strerror(status)))", errno: nil,
                beforeSending: true)
        }
        defer { freeaddrinfo(list) }
        var lastError: Int32 = ECONNREFUSED
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            cursor = info.pointee.ai_next
            let socketFD = socket(
                info.pointee.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                    | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socketFD >= 0 else {
                lastError = errno
                continue
            }
            if Self.connect(socketFD, info.pointee.ai_addr, info.pointee.ai_addrlen, timeoutMilliseconds, &lastError) {
                var one: Int32 = 1
                setsockopt(socketFD, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                fd = socketFD
                return
            }
            close(socketFD)
        }
        throw HTTPFailure(
            message: "cannot connect to \(endpoint): \(String(cString: strerror(lastError)))", errno: lastError,
            beforeSending: true)
    }

    deinit { close(fd) }

    private static func connect(
        _ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t, _ timeout: Int,
        _ error: inout Int32
    ) -> Bool {
        if Glibc.connect(fd, address, length) == 0 { return true }
        guard errno == EINPROGRESS else {
            error = errno
            return false
        }
        var pollFD = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&pollFD, 1, Int32(clamping: timeout))
        guard ready > 0 else {
            error = ready == 0 ? ETIMEDOUT : errno
            return false
        }
        var socketError: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &size)
        error = socketError
        return socketError == 0
    }

    /// Sends the whole request before `deadline` (milliseconds on the monotonic clock).
    func send(_ bytes: [UInt8], deadline: Int) throws(HTTPFailure) {
        var offset = 0
        while offset < bytes.count {
            try wait(for: Int16(POLLOUT), deadline: deadline, sending: true)
            let written = bytes[offset...].withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                throw HTTPFailure(
                    message: "send: \(String(cString: strerror(errno)))", errno: errno, beforeSending: offset == 0)
            }
            offset += written
        }
    }

    private func wait(for events: Int16, deadline: Int, sending: Bool = false) throws(HTTPFailure) {
        while true {
            let remaining = deadline - monotonicMilliseconds()
            guard remaining > 0 else {
                throw HTTPFailure(message: "timed out", errno: ETIMEDOUT, beforeSending: false)
            }
            var pollFD = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&pollFD, 1, Int32(clamping: remaining))
            if ready > 0 { return }
            if ready < 0 && errno != EINTR {
                throw HTTPFailure(
                    message: "poll: \(String(cString: strerror(errno)))", errno: errno, beforeSending: false)
            }
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill(deadline: Int) throws(HTTPFailure) -> Bool {
        if finished { return false }
        if position > 0 && position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        }
        try wait(for: Int16(POLLIN), deadline: deadline)
        var chunk = [UInt8](repeating: 0, count: 16384)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count < 0 {
            if errno == EAGAIN || errno == EINTR { return true }
            throw HTTPFailure(message: "recv: \(String(cString: strerror(errno)))", errno: errno, beforeSending: false)
        }
        if count == 0 {
            finished = true
            return false
        }
        buffer.append(contentsOf: chunk[0..<count])
        return true
    }

    /// One CRLF-terminated line (without the CRLF).
    func readLine(deadline: Int) throws(HTTPFailure) -> String {
        while true {
            if let newline = buffer[position...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > position && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = String(decoding: buffer[position..<end], as: UTF8.self)
                position = newline + 1
                return line
            }
            guard try fill(deadline: deadline) else {
                throw HTTPFailure(message: "connection closed mid-response", errno: nil, beforeSending: false)
            }
        }
    }

    /// Exactly `count` bytes.
    func read(count: Int, deadline: Int) throws(HTTPFailure) -> [UInt8] {
        while buffer.count - position < count {
            guard try fill(deadline: deadline) else {
                throw HTTPFailure(message: "connection closed mid-body", errno: nil, beforeSending: false)
            }
        }
        let bytes = Array(buffer[position..<(position + count)])
        position += count
        return bytes
    }

    /// Everything until the server closes the connection.
    func readToEnd(deadline: Int) throws(HTTPFailure) -> [UInt8] {
        while try fill(deadline: deadline) {}
        let bytes = Array(buffer[position...])
        position = buffer.count
        return bytes
    }
}

/// The status line and headers of a response (header names lowercased).
struct HTTPResponseHead {
    let status: Int
    let headers: [String: String]

    var isChunked: Bool { headers["transfer-encoding"]?.lowercased().contains("chunked") ?? false }
    var contentLength: Int? { headers["content-length"].flatMap { Int($0) } }
}

/// The few requests the etcd gateway needs: POST a JSON body, read the whole answer or stream it.
enum HTTPClient {
    static func request(
        method: String, path: String, body: [UInt8], endpoint: HTTPEndpoint, connection: HTTPConnection,
        deadline: Int
    ) throws(HTTPFailure) -> HTTPResponseHead {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(endpoint.host):\(endpoint.port)\r\n"
        head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        try connection.send(Array(head.utf8) + body, deadline: deadline)
        let statusLine = try connection.readLine(deadline: deadline)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw HTTPFailure(message: "bad status line \"\(statusLine)\"", errno: nil, beforeSending: false)
        }
        var headers: [String: String] = [:]
        while true {
            let line = try connection.readLine(deadline: deadline)
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingSpaces()
        }
        return HTTPResponseHead(status: status, headers: headers)
    }

    /// A whole response body.
    static func body(of head: HTTPResponseHead, connection: HTTPConnection, deadline: Int) throws(HTTPFailure)
        -> [UInt8]
    {
        if head.isChunked {
            var body: [UInt8] = []
            while let chunk = try nextChunk(connection: connection, deadline: deadline) { body += chunk }
            return body
        }
        if let length = head.contentLength { return try connection.read(count: length, deadline: deadline) }
        return try connection.readToEnd(deadline: deadline)
    }

    /// The next chunk of a chunked body; nil after the last one.
    static func nextChunk(connection: HTTPConnection, deadline: Int) throws(HTTPFailure) -> [UInt8]? {
        let sizeLine = try connection.readLine(deadline: deadline)
        let sizeText = sizeLine.split(separator: ";").first.map { $0.trimmingSpaces() } ?? ""
        guard let size = Int(sizeText, radix: 16) else {
            throw HTTPFailure(message: "bad chunk size \"\(sizeLine)\"", errno: nil, beforeSending: false)
        }
        if size == 0 {
            _ = try? connection.readLine(deadline: deadline)
            return nil
        }
        let data = try connection.read(count: size, deadline: deadline)
        _ = try connection.readLine(deadline: deadline)
        return data
    }
}

/// Milliseconds on CLOCK_MONOTONIC, for deadlines that wall-clock jumps cannot move.
func monotonicMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
