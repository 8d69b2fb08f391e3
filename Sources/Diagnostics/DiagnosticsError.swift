import Firewall
import NetNS
import Netlink

/// Why a diagnostic could not be produced at all (individual problems are findings instead).
public struct DiagnosticsError: Error, CustomStringConvertible, Sendable {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }

    static func wrap(_ error: any Error, _ what: String) -> DiagnosticsError {
        DiagnosticsError("\(what): \(error)")
    }
}

/// Opens a namespace by path, turning the failure into a diagnostic message.
func openNamespace(_ path: String) throws(DiagnosticsError) -> NetworkNamespace {
    do { return try NetworkNamespace.open(path: path) } catch {
        throw DiagnosticsError.wrap(error, "cannot open network namespace \(path)")
    }
}

/// True when `path` still names a live network namespace.
func namespaceExists(_ path: String) -> Bool {
    guard !path.isEmpty else { return false }
    return (try? NetworkNamespace.open(path: path)) != nil
}

func snapshot(of namespace: NetworkNamespace, includeFDB: Bool = true) throws(DiagnosticsError) -> NamespaceSnapshot {
    do { return try NamespaceSnapshot.read(namespace: namespace, includeFDB: includeFDB) } catch {
        throw DiagnosticsError.wrap(error, "cannot read the kernel state of \(namespace.path)")
    }
}

/// Pier's nftables state, or an empty snapshot when nf_tables cannot be read (doctor reports
/// that separately; inspect and trace still show everything else).
func firewallSnapshot(of namespace: NetworkNamespace) -> FirewallSnapshot {
    guard let client = try? NFTablesClient(namespace: namespace), let snapshot = try? FirewallSnapshot.read(client)
    else { return FirewallSnapshot(sets: [], elements: [], baseChains: [], records: [:]) }
    return snapshot
}
