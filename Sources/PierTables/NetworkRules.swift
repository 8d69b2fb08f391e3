import Firewall
import IPAddressing

/// What one bridge-style network contributes to `inet pier`: its subnets in the masquerade
/// sets and its bridge in the isolation sets. Elements carry the network's tag; the subnet
/// elements also name their prefix in the tag, because an interval's end cannot be read back
/// reliably on every kernel and GC must be able to delete exactly that interval.
public struct NetworkRules {
    public let client: NFTablesClient
    /// `net=<name>` (see `Attachment.networkTag`).
    public let networkTag: String

    public init(client: NFTablesClient, networkTag: String) {
        self.client = client
        self.networkTag = networkTag
    }

    func subnetTag(_ subnet: IPPrefix) -> String { "\(networkTag) \(subnet.network)" }

    /// Ensures the table layout and this network's elements. Idempotent; safe to race.
    /// Reads first: once a network is set up, ADDs commit nothing (a commit costs its
    /// process an RCU grace period when its netfilter socket closes).
    /// Also puts Pier's accept rule into other tables' forward chains that drop by default
    /// (`ForeignForwardAccept`), so the network's traffic passes them.
    /// `isInternal`: nothing is forwarded out of the bridge or into it (`--internal` networks).
    public func attach(
        bridge: String, masqueradeSubnets: [IPPrefix], isolated: Bool, isInternal: Bool = false
    ) throws(FirewallError) {
        if try isAttached(
            bridge: bridge, masqueradeSubnets: masqueradeSubnets, isolated: isolated, isInternal: isInternal)
        {
            try ForeignForwardAccept(client: client).ensure()
            return
        }
        var batch = Batch()
        for subnet in masqueradeSubnets {
            batch.addElements(
                [SetElement(prefix: subnet.network, comment: subnetTag(subnet))],
                to: PierTable.masqueradeSet(for: subnet.family).path)
        }
        batch.addElements(
            [SetElement(key: [.interfaceName(bridge), .interfaceName(bridge)], comment: networkTag)],
            to: PierTable.sameBridge.path)
        if isolated {
            batch.addElements(
                [SetElement(key: [.interfaceName(bridge)], comment: networkTag)], to: PierTable.isolatedBridges.path)
        }
        if isInternal {
            batch.addElements(
                [SetElement(key: [.interfaceName(bridge)], comment: networkTag)], to: PierTable.internalBridges.path)
        }
        try client.apply(PierTable.layout, ensuring: PierTable.rules, changes: batch)
        try ForeignForwardAccept(client: client).ensure()
    }

    /// True when the layout's rules and every element `attach` would add are in place.
    func isAttached(
        bridge: String, masqueradeSubnets: [IPPrefix], isolated: Bool, isInternal: Bool = false
    ) throws(FirewallError) -> Bool {
        do {
            for chain in Set(PierTable.rules.map(\.chain)) {
                let present = Set(
                    try client.rules(family: .inet, table: PierTable.name, chain: chain).compactMap(\.comment))
                let wanted = PierTable.rules.filter { $0.chain == chain }.compactMap(\.comment)
                guard wanted.allSatisfy(present.contains) else { return false }
            }
            let pair: [SetValue] = [.interfaceName(bridge), .interfaceName(bridge)]
            guard try client.element(pair, in: PierTable.sameBridge.path) != nil else { return false }
            if isolated {
                guard try client.element([.interfaceName(bridge)], in: PierTable.isolatedBridges.path) != nil else {
                    return false
                }
            }
            if isInternal {
                guard try client.element([.interfaceName(bridge)], in: PierTable.internalBridges.path) != nil else {
                    return false
                }
            }
            for subnet in masqueradeSubnets where try !isMasqueraded(subnet) { return false }
            return true
        } catch  where error.isNotFound {
            return false
        }
    }

    /// True when `subnet` is in the masquerade set under this network's tag (CHECK).
    public func isMasqueraded(_ subnet: IPPrefix) throws(FirewallError) -> Bool {
        let tag = subnetTag(subnet)
        let records: [ElementRecord]
        do {
            records = try client.elements(of: PierTable.masqueradeSet(for: subnet.family).path)
        } catch  where error.isNotFound {
            return false
        }
        return records.contains { $0.comment == tag && $0.key == subnet.network.firstAddress.bytes }
    }

    /// Removes every element this network owns (when its bridge goes away). Missing table or
    /// elements are not errors.
    public func detach() throws(FirewallError) {
        for set in [PierTable.isolatedBridges, PierTable.sameBridge, PierTable.internalBridges] {
            do { try client.deleteElements(ownedBy: networkTag, from: set.path) } catch  where error.isNotFound {}
        }
        for family in IPFamily.allCases {
            let path = PierTable.masqueradeSet(for: family).path
            let records: [ElementRecord]
            do { records = try client.elements(of: path) } catch  where error.isNotFound { continue }
            let subnets = records.compactMap { record -> IPPrefix? in
                guard let comment = record.comment, comment.hasPrefix(networkTag + " ") else { return nil }
                return IPPrefix(String(comment.dropFirst(networkTag.count + 1)))
            }
            guard !subnets.isEmpty else { continue }
            var batch = Batch()
            batch.deleteElements(subnets.map { SetElement(prefix: $0) }, from: path)
            do { try client.commit(batch) } catch  where error.isNotFound {}
        }
    }
}
