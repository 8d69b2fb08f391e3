/// Why an IPAM operation failed. The plugin maps `kind` to a CNI error code in one place
/// (`cniCode`), so nothing else needs to know the codes.
public struct IPAMError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Hashable {
        /// stdin is not JSON or has the wrong shape where JSON types are concerned.
        case decode
        /// The network configuration is invalid (ranges, routes, store settings, name).
        case invalidConfig
        /// The attachment (container ID, ifname) or CNI_ARGS is invalid.
        case invalidArgument
        /// A requested address is malformed, outside every range set, a gateway or taken;
        /// or the attachment already holds an address in a range set.
        case addressUnavailable
        /// A range set has no free address left.
        case exhausted
        /// CHECK found no lease (or an address mismatch) for the attachment.
        case notFound
        /// Reading or writing the lease store failed.
        case io
        /// STATUS: the plugin cannot serve ADDs right now.
        case unavailable
    }

    public let kind: Kind
    public let message: String
    /// Extra context (the underlying error, errno text).
    public let details: String?
    public let errno: Int32?

    public init(_ kind: Kind, _ message: String, details: String? = nil, errno: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.details = details
        self.errno = errno
    }

    public var description: String {
        guard let details, !details.isEmpty else { return message }
        return "\(message): \(details)"
    }

    /// The CNI error code (SPEC §Error; see plugins/ipam/README.md "Error codes").
    /// - decode 6, invalidConfig 7, invalidArgument 4, io 5: as the spec defines them.
    /// - exhausted 11 ("try again later"): addresses come back when containers go away, and
    ///   runtimes retry ADD on 11 instead of treating the config as broken.
    /// - addressUnavailable and notFound 999: the Go library's generic plugin error, which
    ///   is what host-local returns for the same situations.
    /// - unavailable 50: STATUS "plugin not available".
    public var cniCode: Int {
        switch kind {
        case .decode: return 6
        case .invalidConfig: return 7
        case .invalidArgument: return 4
        case .io: return 5
        case .exhausted: return 11
        case .addressUnavailable, .notFound: return 999
        case .unavailable: return 50
        }
    }
}
