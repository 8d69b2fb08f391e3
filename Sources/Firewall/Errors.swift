import NetlinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// A failed nftables or conntrack operation: what was attempted, on which object, and the
/// errno the kernel (or the socket layer) returned.
public struct FirewallError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What Pier was doing, e.g. "add set element" or "receive batch reply".
    public let operation: String
    /// The object it was done to, e.g. "inet pier map dnat", or empty.
    public let object: String
    public let errno: Int32
    /// The kernel's extended-ACK text, when it sent one.
    public let kernelMessage: String?
    /// The netlink failure behind this one (socket, protocol, kernel), when there was one.
    public let cause: NetlinkError?

    public init(_ operation: String, object: String = "", errno: Int32, kernelMessage: String? = nil) {
        self.operation = operation
        self.object = object
        self.errno = errno
        self.kernelMessage = kernelMessage
        self.cause = nil
    }

    /// The netlink layer's error as this layer reports it: errno kept, the extended-ACK text
    /// as `kernelMessage`, and the operation renamed when the caller knows it better.
    public init(_ cause: NetlinkError, operation: String? = nil, object: String = "") {
        self.operation = operation ?? cause.operation
        self.object = object
        self.errno = cause.errno
        self.kernelMessage = cause.kind == .kernel ? cause.detail : nil
        self.cause = cause
    }

    /// The ruleset changed after the generation was read (generation-checked batch), or kept
    /// changing while it was being read (a dump interrupted on every attempt): another
    /// process is busy, and trying again will help.
    public var isGenerationChanged: Bool { errno == ERESTART || cause?.kind == .dumpInterrupted }
    /// The object (table, chain, set, element, rule) is not there.
    public var isNotFound: Bool { errno == ENOENT }
    /// The object exists already (exclusive create, or a duplicate set element key).
    public var isAlreadyExists: Bool { errno == EEXIST }

    public var description: String {
        var text = operation
        if !object.isEmpty { text += " \(object)" }
        text += ": \(String(cString: strerror(errno))) (errno \(errno))"
        if let detail = kernelMessage ?? cause?.detail, !detail.isEmpty { text += ": \(detail)" }
        return text
    }
}
