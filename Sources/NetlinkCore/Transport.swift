import CMnl
import CPierShim
import NetNS

#if canImport(Glibc)
    import Glibc
#endif

/// Moves whole netlink datagrams. The session above it owns framing, sequence numbers and
/// error handling, so a recording fake can stand in for the kernel in unit tests.
public protocol NetlinkTransport: AnyObject {
    /// The port id the kernel assigned to this socket; replies must be addressed to it.
    var portID: UInt32 { get }
    /// Sends one request (one or more netlink messages, e.g. a whole nf_tables batch).
    func send(_ datagram: [UInt8]) throws(NetlinkError)
    /// Waits for the next datagram and returns it (it may hold several messages).
    func receive() throws(NetlinkError) -> [UInt8]
}

/// A netlink protocol and what its sockets need.
public struct NetlinkProtocol: Sendable, Equatable {
    public let number: Int32
    /// For error texts: "route", "netfilter".
    public let name: String
    /// SO_RCVBUF to ask for, or nil for the kernel's default. An nf_tables batch is answered
    /// with one ACK per message, all queued before the first is read.
    public let kernelReceiveBuffer: Int32?

    public static let route = NetlinkProtocol(number: NETLINK_ROUTE, name: "route", kernelReceiveBuffer: nil)
    public static let netfilter = NetlinkProtocol(
        number: NETLINK_NETFILTER, name: "netfilter", kernelReceiveBuffer: 1 << 20)
}

/// A netlink socket over libmnl, bound (autobind) in the network namespace it was opened in;
/// it stays there whatever the thread does afterwards.
public final class NetlinkSocket: NetlinkTransport {
    private let socket: OpaquePointer
    public let portID: UInt32
    private let receiveTimeout: Duration
    /// Large enough for the biggest dump skb the kernel builds (it grows dumps up to 32 KiB
    /// when the reader's buffer allows), so no reply is ever truncated.
    private static let receiveBufferSize = 64 * 1024
    /// Reused for every receive: allocating and zeroing 64 KiB per reply adds up in dumps. Not
    /// zeroed at all (only the bytes a receive wrote are read): untouched pages cost no memory,
    /// and most replies fill one (docs/design.md, "Peak RSS").
    private var buffer = [UInt8](unsafeUninitializedCapacity: receiveBufferSize) { _, count in
        count = receiveBufferSize
    }

    /// Opens a socket for `netlinkProtocol` in `namespace` (the calling thread's own when nil).
    /// A reply that does not come within `receiveTimeout` is an ETIMEDOUT error: a plugin must
    /// never hang. (The kernel does its work inside `send`; only a reply that will never come
    /// waits this long.)
    public init(
        _ netlinkProtocol: NetlinkProtocol, namespace: NetworkNamespace? = nil,
        receiveTimeout: Duration = .seconds(10)
    ) throws(NetlinkError) {
        let operation = "open netlink \(netlinkProtocol.name) socket"
        // Only the creation needs the namespace: the socket belongs to the one it was made in.
        let (opened, openErrno) = try Self.inNamespace(namespace, operation: operation) {
            let socket = mnl_socket_open(netlinkProtocol.number)
            return (socket, Glibc.errno)
        }
        guard let opened else { throw NetlinkError(.socket, operation: operation, errno: openErrno) }
        guard mnl_socket_bind(opened, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let err = Glibc.errno
            mnl_socket_close(opened)
            throw NetlinkError(.socket, operation: operation, errno: err)
        }
        let fd = mnl_socket_get_fd(opened)
        // Best effort: extended ACK gives the kernel's reason in errors; capped ACK stops it
        // echoing whole requests (or batches) back. Older kernels lack them; errors still work.
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        let (seconds, attoseconds) = receiveTimeout.components
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if var size = netlinkProtocol.kernelReceiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        self.socket = opened
        self.portID = mnl_socket_get_portid(opened)
        self.receiveTimeout = receiveTimeout
    }

    /// Set when closing would wait for the kernel to release what this socket committed: a netfilter
    /// socket whose transactions deleted objects waits an RCU grace period (5–20 ms on a busy VM) in
    /// its release, and so does a process exiting with it open. The last reference then goes to a
    /// detached grandchild (`pier_close_detached`), which pays the wait; the changes are committed
    /// either way, so the caller's DEL is complete when it returns.
    public var releasesDetached = false

    deinit {
        let fd = mnl_socket_get_fd(socket)
        if releasesDetached, case let copy = dup(fd), copy >= 0 {
            // libmnl closes `fd` itself: point it at /dev/null first, so the copy is the socket's
            // only reference here when it is handed over.
            let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if null >= 0 {
                dup2(null, fd)
                close(null)
            }
            pier_close_detached(copy)
        }
        mnl_socket_close(socket)
    }

    /// Joins multicast `group` of this socket's protocol, so `receive` also returns the kernel's
    /// notifications (e.g. NFNLGRP_NFTABLES: every committed nf_tables change).
    public func subscribe(group: UInt32) throws(NetlinkError) {
        var group = group
        let fd = mnl_socket_get_fd(socket)
        guard setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, socklen_t(MemoryLayout<UInt32>.size)) == 0
        else {
            throw NetlinkError(.socket, operation: "join netlink multicast group \(group)", errno: Glibc.errno)
        }
    }

    private static func inNamespace<T>(
        _ namespace: NetworkNamespace?, operation: String, _ body: () -> T
    ) throws(NetlinkError) -> T {
        guard let namespace else { return body() }
        do {
            return try namespace.perform(body)
        } catch let error as NamespaceError {
            throw NetlinkError(
                .namespace, operation: "\(operation) in \(namespace.path)", errno: error.errno,
                detail: error.description)
        } catch {
            throw NetlinkError(
                .namespace, operation: "\(operation) in \(namespace.path)", errno: EINVAL, detail: "\(error)")
        }
    }

    public func send(_ datagram: [UInt8]) throws(NetlinkError) {
        while true {
            let sent = datagram.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
            if sent == datagram.count { return }
            let err = sent < 0 ? Glibc.errno : EMSGSIZE
            if err == EINTR { continue }
            throw NetlinkError(.socket, operation: "send netlink request", errno: err)
        }
    }

    public func receive() throws(NetlinkError) -> [UInt8] {
        while true {
            let count = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            if count >= 0 { return Array(buffer[0..<count]) }
            let err = Glibc.errno
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK {
                throw NetlinkError(
                    .socket, operation: "receive netlink reply", errno: ETIMEDOUT,
                    detail: "no reply within \(receiveTimeout)")
            }
            throw NetlinkError(.socket, operation: "receive netlink reply", errno: err)
        }
    }
}
