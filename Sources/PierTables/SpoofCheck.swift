import Firewall
import IPAddressing

/// `macspoofchk`: frames entering the bridge from a container's port must carry that
/// container's MAC. One rule for the whole host; each attachment adds two elements (its port,
/// and its port with its MAC), tagged with the attachment, and DEL removes exactly those.
///
///     table bridge pier {
///       set spoofcheck_ports { type ifname; }
///       set spoofcheck_allowed { type ifname . ether_addr; }
///       chain prerouting { type filter hook prerouting priority -300;
///         iifname @spoofcheck_ports iifname . ether saddr != @spoofcheck_allowed drop }
///     }
public struct SpoofCheck {
    public static let table = Table(family: .bridge, name: PierTable.name)
    public static let ports = NFTSet(
        family: .bridge, table: PierTable.name, name: "spoofcheck_ports", keyType: [.interfaceName])
    public static let allowed = NFTSet(
        family: .bridge, table: PierTable.name, name: "spoofcheck_allowed", keyType: [.interfaceName, .etherAddress])
    public static let prerouting = Chain(
        family: .bridge, table: PierTable.name, name: "prerouting",
        base: BaseChainSpec(type: .filter, hook: .prerouting, priority: -300))

    static var rule: Rule {
        Rule(family: .bridge, table: PierTable.name, chain: prerouting.name, comment: "pier:macspoofchk")
            .match([.iifname], inSet: ports.name)
            .match([.iifname, .etherSource], inSet: allowed.name, negated: true)
            .verdict(.drop)
    }

    public let client: NFTablesClient

    public init(client: NFTablesClient) { self.client = client }

    /// Lets only `mac` in through `port`.
    public func protect(port: String, mac: MACAddress, owner: String) throws(FirewallError) {
        var layout = Batch()
        layout.add(Self.table)
        layout.add(Self.ports)
        layout.add(Self.allowed)
        layout.add(Self.prerouting)
        var elements = Batch()
        elements.addElements([SetElement(key: [.interfaceName(port)], comment: owner)], to: Self.ports.path)
        elements.addElements(
            [SetElement(key: [.interfaceName(port), .raw(mac.bytes)], comment: owner)], to: Self.allowed.path)
        try client.apply(layout, ensuring: [Self.rule], changes: elements)
    }

    /// Removes the attachment's elements; nothing else, and nothing when they are gone.
    public func release(owner: String) throws(FirewallError) {
        for set in [Self.ports, Self.allowed] {
            do { try client.deleteElements(ownedBy: owner, from: set.path) } catch  where error.isNotFound {}
        }
    }

    /// True when `port` is protected with `mac` under `owner` (CHECK).
    public func isProtected(port: String, mac: MACAddress, owner: String) throws(FirewallError) -> Bool {
        let key = [SetValue.interfaceName(port), .raw(mac.bytes)]
        do {
            return try client.elements(of: Self.allowed.path).contains {
                $0.comment == owner && $0.decodedKey([.interfaceName, .etherAddress]) == key
            }
        } catch  where error.isNotFound {
            return false
        }
    }
}

extension SpoofCheck {
    /// Owner tags present in the spoof-check sets (GC compares them with the valid attachments).
    public func owners() throws(FirewallError) -> Set<String> {
        var owners = Set<String>()
        for set in [Self.ports, Self.allowed] {
            do {
                for record in try client.elements(of: set.path) {
                    if let owner = record.comment { owners.insert(owner) }
                }
            } catch  where error.isNotFound {}
        }
        return owners
    }
}
