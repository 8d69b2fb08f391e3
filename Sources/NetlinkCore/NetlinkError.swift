#if canImport(Glibc)
    import Glibc
#endif

/// A failed netlink operation: what was attempted, why, and the errno behind it.
///
/// Plugins decide idempotency from these (`isNotFound` on DEL, `isExists` on ADD), and the
/// CNI layer maps them to spec error codes, so the errno is kept rather than folded into text.
public struct NetlinkError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The kernel rejected the request (NLMSG_ERROR or a failing NLMSG_DONE).
        case kernel
        /// Opening, binding, sending on or receiving from the socket failed.
        case socket
        /// A reply broke the protocol: wrong sequence number or port id, truncated or malformed.
        case protocolViolation
        /// A dump kept being interrupted by concurrent changes (NLM_F_DUMP_INTR) on every retry.
        case dumpInterrupted
        /// The request would not fit in the message buffer.
        case messageTooLarge
        /// The caller asked for something that cannot be expressed (bad name, mixed families).
        case invalidArgument
        /// Entering the network namespace for the socket failed.
        case namespace
    }

    public let kind: Kind
    /// What was attempted, for example "create veth eth0/veth1234abcd".
    public let operation: String
    /// The errno (positive), as the kernel or the C library reported it.
    public let errno: Int32
    /// Extra detail: the kernel's extended-ACK message, or what was wrong with a reply.
    public let detail: String?

    public init(_ kind: Kind, operation: String, errno: Int32, detail: String? = nil) {
        self.kind = kind
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// The object is not there. Link, neighbour, route and address lookups and deletes report
    /// absence with different errnos, and DEL must treat all of them as "already gone".
    public var isNotFound: Bool {
        kind == .kernel && [ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL].contains(errno)
    }

    /// The object already exists (create with NLM_F_EXCL).
    public var isExists: Bool { kind == .kernel && errno == EEXIST }

    public var description: String {
        var text = "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
        if let detail, !detail.isEmpty { text += ": \(detail)" }
        return text
    }
}
