import CMnl
import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

/// Moves whole netlink datagrams. The session above it owns framing, sequence numbers and
/// error handling, so a recording fake can stand in for the kernel in unit tests.
public protocol NetlinkTransport: AnyObject {
    /// The port id the kernel assigned to this socket; replies must be addressed to it.
    var portID: UInt32 { get }
    /// Sends one request (one or more netlink messages) to the kernel.
    func send(_ datagram: [UInt8]) throws(NetlinkError)
    /// Blocks until the next datagram arrives and returns it (it may hold several messages).
    func receive() throws(NetlinkError) -> [UInt8]
}

/// A NETLINK_ROUTE socket over libmnl, bound in the network namespace it was opened in.
public final class MnlSocketTransport: NetlinkTransport {
    private let socket: OpaquePointer
    public let portID: UInt32
    /// Large enough for the biggest dump skb the kernel builds (it grows dumps up to 32 KiB
    /// when the reader's buffer allows), so no reply is ever truncated.
    private static let receiveBufferSize = 64 * 1024
    /// Reused for every receive: allocating and zeroing 64 KiB per reply adds up in dumps.
    private var buffer = [UInt8](repeating: 0, count: receiveBufferSize)

    /// Opens and binds a socket in the calling thread's current network namespace.
    public init() throws(NetlinkError) {
        let operation = "open netlink route socket"
        guard let socket = mnl_socket_open(NETLINK_ROUTE) else {
            throw NetlinkError(.socket, operation: operation, errno: Glibc.errno)
        }
        // Autobind: port ids are unique per namespace and the kernel picks a free one.
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let err = Glibc.errno
            mnl_socket_close(socket)
            throw NetlinkError(.socket, operation: operation, errno: err)
        }
        // Best effort: extended ACK gives the kernel's reason in errors; capped ACK stops it
        // echoing whole requests back. Older kernels lack them, and errors still work.
        var on: Int32 = 1
        _ = mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        self.socket = socket
        self.portID = mnl_socket_get_portid(socket)
    }

    deinit { mnl_socket_close(socket) }

    public func send(_ datagram: [UInt8]) throws(NetlinkError) {
        let sent = datagram.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        guard sent == datagram.count else {
            throw NetlinkError(
                .socket, operation: "send netlink request", errno: sent < 0 ? Glibc.errno : EMSGSIZE)
        }
    }

    public func receive() throws(NetlinkError) -> [UInt8] {
        while true {
            let count = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            if count >= 0 { return Array(buffer[0..<count]) }
            let err = Glibc.errno
            if err == EINTR { continue }
            throw NetlinkError(.socket, operation: "receive netlink reply", errno: err)
        }
    }
}

/// Replays canned replies and records every request: lets unit tests check exact request
/// bytes and the session's handling of ACKs, errors and dumps without a kernel.
public final class RecordingTransport: NetlinkTransport {
    public let portID: UInt32
    public private(set) var sent: [[UInt8]] = []
    /// Replies to hand out, in order, one datagram per `receive()`.
    public var replies: [[UInt8]]
    /// Called on each send so a test can compute replies from the request (e.g. its seq).
    public var onSend: (([UInt8]) -> [[UInt8]])?

    public init(portID: UInt32 = 4242, replies: [[UInt8]] = []) {
        self.portID = portID
        self.replies = replies
    }

    public func send(_ datagram: [UInt8]) throws(NetlinkError) {
        sent.append(datagram)
        if let onSend { replies.append(contentsOf: onSend(datagram)) }
    }

    public func receive() throws(NetlinkError) -> [UInt8] {
        guard !replies.isEmpty else {
            throw NetlinkError(
                .socket, operation: "receive netlink reply", errno: EAGAIN, detail: "no canned reply left")
        }
        return replies.removeFirst()
    }
}
