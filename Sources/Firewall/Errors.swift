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

    public init(_ operation: String, object: String = "", errno: Int32, kernelMessage: String? = nil) {
        self.operation = operation
        self.object = object
        self.errno = errno
        self.kernelMessage = kernelMessage
    }

    /// The ruleset changed after the generation was read (generation-checked batch).
    public var isGenerationChanged: Bool { errno == ERESTART }
    /// The object (table, chain, set, element, rule) is not there.
    public var isNotFound: Bool { errno == ENOENT }
    /// The object exists already (exclusive create, or a duplicate set element key).
    public var isAlreadyExists: Bool { errno == EEXIST }

    public var description: String {
        var text = operation
        if !object.isEmpty { text += " \(object)" }
        text += ": \(String(cString: strerror(errno))) (errno \(errno))"
        if let kernelMessage, !kernelMessage.isEmpty { text += ": \(kernelMessage)" }
        return text
    }
}
