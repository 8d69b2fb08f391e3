import CMnl
import CPierShim
import NetNS

#if canImport(Glibc)
    import Glibc
#endif

/// Where nftables and conntrack requests go: a NETLINK_NETFILTER socket, or a recording fake
/// in unit tests. Requests are whole datagrams (a batch is one datagram); replies come back
/// one datagram per `receive`.
public protocol NetfilterTransport: AnyObject {
    func send(_ datagram: [UInt8]) throws(FirewallError)
    func receive() throws(FirewallError) -> [UInt8]
}

/// A NETLINK_NETFILTER socket bound (by the kernel, autobind) in one network namespace.
public final class NetlinkSocketTransport: NetfilterTransport {
    private let socket: OpaquePointer
    private var buffer: [UInt8]

    /// Opens the socket in `namespace` (the caller's own when nil). A netlink socket stays in
    /// the namespace it was created in, so only the creation happens inside `perform`.
    public init(namespace: NetworkNamespace? = nil, receiveTimeoutSeconds: Int = 10) throws(FirewallError) {
        let opened: OpaquePointer?
        if let namespace {
            do {
                opened = try namespace.perform { mnl_socket_open(NETLINK_NETFILTER) }
            } catch {
                let code = (error as? NamespaceError)?.errno ?? EINVAL
                throw FirewallError("enter network namespace", object: namespace.path, errno: code)
            }
        } else {
            opened = mnl_socket_open(NETLINK_NETFILTER)
        }
        guard let opened else { throw FirewallError("open netfilter netlink socket", errno: errno) }
        socket = opened
        // A 64 KiB buffer takes a whole dump datagram; libmnl's default (page size) may not.
        buffer = [UInt8](repeating: 0, count: max(Int(pier_mnl_socket_buffer_size()), 65536))
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = errno
            mnl_socket_close(socket)
            throw FirewallError("bind netfilter netlink socket", errno: code)
        }
        let fd = mnl_socket_get_fd(socket)
        var one: Int32 = 1
        // CAP_ACK: errors echo only the header, not the whole (possibly large) batch message.
        // EXT_ACK: the kernel says which attribute it disliked.
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
        // A plugin must never hang on a reply that will not come.
        var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var size: Int32 = 1 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { mnl_socket_close(socket) }

    public var portID: UInt32 { mnl_socket_get_portid(socket) }

    public func send(_ datagram: [UInt8]) throws(FirewallError) {
        let sent = datagram.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        guard sent == datagram.count else {
            throw FirewallError("send netlink request", errno: sent < 0 ? errno : EMSGSIZE)
        }
    }

    public func receive() throws(FirewallError) -> [UInt8] {
        let capacity = buffer.count
        let received = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, capacity) }
        guard received >= 0 else {
            let code = errno
            throw FirewallError("receive netlink reply", errno: code == EAGAIN ? ETIMEDOUT : code)
        }
        return Array(buffer[0..<received])
    }
}

/// A fake transport that records every datagram and answers from a script: by default it
/// acknowledges every message that asks for an ACK, as the kernel does for a good batch.
public final class RecordingTransport: NetfilterTransport {
    public private(set) var sent: [[UInt8]] = []
    /// Datagrams handed out before any automatic answer (for canned dumps and errors).
    public var queuedReplies: [[UInt8]] = []
    /// Per sequence number, the errno to answer with instead of an ACK.
    public var failures: [UInt32: Int32] = [:]
    public var autoAcknowledge = true
    /// Answers a sent datagram with reply datagrams; when it returns nil the automatic
    /// ACK/failure handling applies. Lets tests play the kernel for gets and dumps.
    public var responder: (([UInt8]) -> [[UInt8]]?)?
    private var pending: [[UInt8]] = []

    public init() {}

    public func send(_ datagram: [UInt8]) throws(FirewallError) {
        sent.append(datagram)
        if let replies = responder?(datagram) {
            pending += replies
            return
        }
        guard autoAcknowledge else { return }
        for message in NetlinkMessage.split(datagram) {
            if let code = failures[message.sequence] {
                pending.append(RecordingTransport.errorReply(sequence: message.sequence, errno: code))
            } else if message.flags & nlmFAck != 0 {
                pending.append(RecordingTransport.errorReply(sequence: message.sequence, errno: 0))
            }
        }
    }

    public func receive() throws(FirewallError) -> [UInt8] {
        if !queuedReplies.isEmpty { return queuedReplies.removeFirst() }
        if !pending.isEmpty { return pending.removeFirst() }
        throw FirewallError("receive netlink reply", errno: ETIMEDOUT)
    }

    /// The sequence number of the first message in a datagram (BATCH_BEGIN for a batch).
    public static func firstSequence(of datagram: [UInt8]) -> UInt32 {
        datagram.count >= netlinkHeaderLength ? datagram.readU32(at: 8) : 0
    }

    /// Sequence numbers of every message in a datagram, in order.
    public static func sequences(of datagram: [UInt8]) -> [UInt32] {
        NetlinkMessage.split(datagram).map(\.sequence)
    }

    /// An NLMSG_ERROR message (errno 0 is an ACK) as the kernel sends it with NETLINK_CAP_ACK.
    public static func errorReply(sequence: UInt32, errno code: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendU32(36)
        bytes.appendU16(nlmsgError)
        bytes.appendU16(0x100)  // NLM_F_CAPPED
        bytes.appendU32(sequence)
        bytes.appendU32(0)
        bytes.appendU32(UInt32(bitPattern: -code))
        bytes += [UInt8](repeating: 0, count: 16)
        return bytes
    }
}
