import IPAddressing
import NetNS

#if canImport(Glibc)
    import Glibc
#endif

/// The outcome of a real packet sent from inside the source namespace.
public struct ProbeResult: Sendable, Equatable, Codable {
    /// `icmp` or `tcp`.
    public var kind: String
    public var target: String
    /// icmp: `reply`, `timeout`, `unreachable`; tcp: `connected`, `refused`, `timeout`, `unreachable`.
    public var result: String
    /// The target answered as asked: an echo reply, a TCP connection. A refused connection is not
    /// reached: the path works, but the service asked about does not.
    public var reached: Bool
    public var milliseconds: Int?
    public var detail: String?
}

/// Sends probes from inside a namespace. The sockets are opened inside it and keep working
/// there after the thread switches back, so no packet I/O happens while switched.
enum Probe {
    static func echo(from namespace: NetworkNamespace, to address: IPAddress, timeoutMilliseconds: Int = 1500)
        -> ProbeResult
    {
        var result = ProbeResult(kind: "icmp", target: "\(address)", result: "timeout", reached: false)
        let family = address.family == .v4 ? AF_INET : AF_INET6
        let proto = address.family == .v4 ? Int32(IPPROTO_ICMP) : Int32(IPPROTO_ICMPV6)
        // Raw ICMP needs no ping_group_range setting (DGRAM ICMP sockets are off by default in
        // a fresh namespace); Pier runs as root.
        guard
            let fd = try? namespace.perform({
                socket(family, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
            }),
            fd >= 0
        else {
            result.result = "error"
            result.detail = "cannot open an ICMP socket in \(namespace.path): errno \(errno)"
            return result
        }
        defer { close(fd) }
        let identifier = UInt16(truncatingIfNeeded: getpid() ^ Int32(truncatingIfNeeded: fd << 8)) ^ 0x5049
        let start = monotonicMilliseconds()
        for sequence in UInt16(1)...3 {
            let packet = echoRequest(v6: address.family == .v6, identifier: identifier, sequence: sequence)
            let sent = withSocketAddress(address, port: 0) { pointer, length in
                packet.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, pointer, length) }
            }
            guard sent == packet.count else {
                result.result = "unreachable"
                result.detail = "send failed: \(String(cString: strerror(errno)))"
                return result
            }
            let deadline = monotonicMilliseconds() + timeoutMilliseconds / 3
            while let reply = receive(fd, until: deadline) {
                if isEchoReply(reply, v6: address.family == .v6, identifier: identifier) {
                    result.result = "reply"
                    result.reached = true
                    result.milliseconds = monotonicMilliseconds() - start
                    return result
                }
            }
        }
        return result
    }

    static func connect(
        from namespace: NetworkNamespace, to address: IPAddress, port: UInt16,
        timeoutMilliseconds: Int = 1500
    ) -> ProbeResult {
        var result = ProbeResult(kind: "tcp", target: endpoint(address, port), result: "timeout", reached: false)
        let family = address.family == .v4 ? AF_INET : AF_INET6
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard let fd = try? namespace.perform({ socket(family, type, 0) }), fd >= 0 else {
            result.result = "error"
            result.detail = "cannot open a TCP socket in \(namespace.path)"
            return result
        }
        defer { close(fd) }
        let start = monotonicMilliseconds()
        let status = withSocketAddress(address, port: port) { Glibc.connect(fd, $0, $1) }
        var error: Int32 = status == 0 ? 0 : errno
        if error == EINPROGRESS {
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&poller, 1, Int32(timeoutMilliseconds)) > 0 else { return result }
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        }
        result.milliseconds = monotonicMilliseconds() - start
        switch error {
        case 0:
            result.result = "connected"
            result.reached = true
        case ECONNREFUSED:
            result.result = "refused"
            result.reached = false
            result.detail = "the destination answered with a reset: nothing listens on port \(port)"
        default:
            result.result = "unreachable"
            result.detail = String(cString: strerror(error))
        }
        return result
    }

    static func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
        address.family == .v6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    static func echoRequest(v6: Bool, identifier: UInt16, sequence: UInt16) -> [UInt8] {
        var packet: [UInt8] = [v6 ? 128 : 8, 0, 0, 0]
        packet += [UInt8(identifier >> 8), UInt8(identifier & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        packet += Array("pier trace probe".utf8)
        // The kernel fills in the ICMPv6 checksum (it covers a pseudo-header only it knows).
        if !v6 {
            let sum = checksum(packet)
            packet[2] = UInt8(sum >> 8)
            packet[3] = UInt8(sum & 0xff)
        }
        return packet
    }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    /// IPv4 raw sockets deliver the IP header too; IPv6 ones only the ICMPv6 message.
    static func isEchoReply(_ packet: [UInt8], v6: Bool, identifier: UInt16) -> Bool {
        let offset = v6 ? 0 : Int(packet.first.map { $0 & 0x0f } ?? 5) * 4
        guard packet.count >= offset + 8 else { return false }
        let type = packet[offset]
        let id = UInt16(packet[offset + 4]) << 8 | UInt16(packet[offset + 5])
        return type == (v6 ? 129 : 0) && id == identifier
    }

    static func receive(_ fd: Int32, until deadline: Int) -> [UInt8]? {
        let remaining = deadline - monotonicMilliseconds()
        guard remaining > 0 else { return nil }
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(remaining)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return count > 0 ? Array(buffer[0..<count]) : []
    }

    static func monotonicMilliseconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
    }

    static func withSocketAddress<T>(
        _ address: IPAddress, port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T
    ) -> T {
        let bytes = address.bytes
        if address.family == .v4 {
            var storage = sockaddr_in()
            storage.sin_family = sa_family_t(AF_INET)
            storage.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &storage.sin_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        var storage = sockaddr_in6()
        storage.sin6_family = sa_family_t(AF_INET6)
        storage.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &storage.sin6_addr) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
    }
}
