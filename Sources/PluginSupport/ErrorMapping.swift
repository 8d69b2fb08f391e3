import CNI
import Firewall
import NetNS
import Netlink

#if canImport(Glibc)
    import Glibc
#endif

// Kernel-facing modules keep their own typed errors; this is the one place that decides which
// CNI code each one becomes, so no plugin builds error codes by hand.

extension NetlinkError: CNIErrorConvertible {
    public var cniError: CNIError {
        switch (kind, errno) {
        case (.invalidArgument, _): return CNIError(.invalidNetworkConfig, description)
        case (_, EAGAIN), (_, EBUSY), (.dumpInterrupted, _): return CNIError(.tryAgainLater, description)
        default: return CNIError(.internalError, description)
        }
    }
}

extension NamespaceError: CNIErrorConvertible {
    public var cniError: CNIError {
        if isNotFound { return CNIError(.unknownContainer, "network namespace is gone: \(description)") }
        return CNIError(.internalError, description)
    }
}

extension Sysctl.Failure: CNIErrorConvertible {
    public var cniError: CNIError { CNIError(.internalError, description) }
}

/// Runs a netlink operation whose "already exists" answer means the work is done (a concurrent
/// ADD got there first, or a retry repeats an earlier success).
public func ignoringExisting(_ body: () throws -> Void) throws {
    do { try body() } catch let error as NetlinkError where error.isExists {}
}

/// Runs a netlink operation whose "not found" answer means the work is done (DEL of something
/// already gone).
public func ignoringMissing(_ body: () throws -> Void) throws {
    do { try body() } catch let error as NetlinkError where error.isNotFound {}
}

extension RouteNetlink {
    /// The link, or nil when there is none by that name.
    public func linkIfPresent(named name: String) throws(NetlinkError) -> Link? {
        do { return try link(named: name) } catch {
            if error.isNotFound { return nil }
            throw error
        }
    }
}

extension FirewallError: CNIErrorConvertible {
    public var cniError: CNIError {
        // A generation that kept changing means other plugins are busy: retrying will help.
        isGenerationChanged ? CNIError(.tryAgainLater, description) : CNIError(.internalError, description)
    }
}
