import CNI
import PierTables

/// The firewall plugin's keys, as the reference names them. Both reference backends mean the
/// same here: Pier's nftables sets in `inet pier`; the iptables- and firewalld-only keys are
/// accepted for compatibility and change nothing.
struct FirewallConfig: JSONReadable {
    /// `iptables` or `firewalld` (or absent): all select Pier's nftables sets.
    var backend: String?
    /// The reference's user chain jumped to before its own rules; Pier creates no such chain.
    var iptablesAdminChainName: String?
    /// The reference's firewalld zone; Pier talks to no firewalld.
    var firewalldZone: String?
    /// `open` (default), `same-bridge` or `isolated`.
    var ingressPolicy: String?

    init(_ reader: JSONReader) throws(CNIError) {
        backend = try reader.string("backend")
        iptablesAdminChainName = try reader.string("iptablesAdminChainName")
        firewalldZone = try reader.string("firewalldZone")
        ingressPolicy = try reader.string("ingressPolicy")
    }

    static let backends = ["iptables", "firewalld"]

    /// The validated ingress policy; any error here is code 7, raised before anything changes.
    func validated() throws(CNIError) -> FirewallAttachment.IngressPolicy {
        if let backend, !backend.isEmpty, !Self.backends.contains(backend) {
            throw CNIError(
                .invalidNetworkConfig,
                "unknown firewall backend \"\(backend)\" (known: \(Self.backends.joined(separator: ", ")))")
        }
        guard let text = ingressPolicy, !text.isEmpty else { return .open }
        guard let policy = FirewallAttachment.IngressPolicy(rawValue: text) else {
            let known = FirewallAttachment.IngressPolicy.allCases.map(\.rawValue).joined(separator: ", ")
            throw CNIError(.invalidNetworkConfig, "unknown ingressPolicy \"\(text)\" (known: \(known))")
        }
        return policy
    }
}
