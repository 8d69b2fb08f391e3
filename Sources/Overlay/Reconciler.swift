import IPAddressing
import Netlink

/// What one reconciliation changed (for logs and tests).
public struct ReconcileReport: Sendable, Equatable, CustomStringConvertible {
    public var fdbAdded: [MACAddress] = []
    public var fdbRemoved: [MACAddress] = []
    public var neighborsAdded: [IPAddress] = []
    public var neighborsRemoved: [IPAddress] = []
    /// Addresses announced to this host's containers at their new MAC (`HostSync`).
    public var announced: [IPAddress] = []
    /// Why the announcement failed, if it did.
    public var announceFailure: String?

    public init() {}

    public var isEmpty: Bool {
        fdbAdded.isEmpty && fdbRemoved.isEmpty && neighborsAdded.isEmpty && neighborsRemoved.isEmpty
    }

    public var description: String {
        var text =
            "fdb +\(fdbAdded.count) -\(fdbRemoved.count), neighbours +\(neighborsAdded.count) -\(neighborsRemoved.count)"
        if !announced.isEmpty { text += ", announced \(announced.count)" }
        if let announceFailure { text += ", announcing failed: \(announceFailure)" }
        return text
    }
}

/// Brings the static FDB and neighbour entries of one VXLAN device in line with the store.
/// Every entry Pier installs is permanent and lives on the VXLAN device (FDB with NTF_SELF,
/// neighbours with NUD_PERMANENT), so any such entry no record justifies is stale and goes:
/// a full resync after a restart is just another reconcile.
public struct Reconciler {
    public let netlink: RouteNetlink
    public let vxlanIndex: Int32

    public init(netlink: RouteNetlink, vxlanIndex: Int32) {
        self.netlink = netlink
        self.vxlanIndex = vxlanIndex
    }

    /// The permanent unicast FDB entries with a remote destination on the device.
    public func installedFDB() throws(NetlinkError) -> [MACAddress: IPAddress] {
        var entries: [MACAddress: IPAddress] = [:]
        for entry in try netlink.fdbEntries(index: vxlanIndex) {
            guard entry.flags.contains(.ownedByDevice), !entry.flags.contains(.master),
                entry.state.contains(.permanent), let destination = entry.destination,
                entry.mac.bytes != [0, 0, 0, 0, 0, 0]
            else { continue }
            entries[entry.mac] = destination
        }
        return entries
    }

    /// The permanent neighbour entries (both families) on the device.
    public func installedNeighbors() throws(NetlinkError) -> [IPAddress: MACAddress] {
        var entries: [IPAddress: MACAddress] = [:]
        for family in [IPFamily.v4, .v6] {
            for neighbor in try netlink.neighbors(family: family, index: vxlanIndex)
            where neighbor.state.contains(.permanent) {
                if let mac = neighbor.mac { entries[neighbor.address] = mac }
            }
        }
        return entries
    }

    /// Removes what is stale, then installs what is missing. FDB entries go in before the
    /// neighbours that make them reachable, and come out after them, so a resolved neighbour
    /// never points at a MAC the device cannot tunnel.
    @discardableResult
    public func apply(_ desired: DesiredEntries) throws(NetlinkError) -> ReconcileReport {
        var report = ReconcileReport()
        let fdb = try installedFDB()
        let neighbors = try installedNeighbors()
        for (address, mac) in neighbors where desired.neighbors[address] != mac {
            try ignoringMissingEntry { () throws(NetlinkError) in
                try netlink.deleteNeighbor(Neighbor(index: vxlanIndex, address: address, mac: mac))
            }
            report.neighborsRemoved.append(address)
        }
        for (mac, destination) in fdb where desired.fdb[mac] != destination {
            try ignoringMissingEntry { () throws(NetlinkError) in
                try netlink.deleteFDB(FDBEntry(index: vxlanIndex, mac: mac, destination: destination))
            }
            report.fdbRemoved.append(mac)
        }
        for (mac, destination) in desired.fdb.sorted(by: { $0.key.description < $1.key.description })
        where fdb[mac] != destination {
            try netlink.replaceFDB(FDBEntry(index: vxlanIndex, mac: mac, destination: destination))
            report.fdbAdded.append(mac)
        }
        for (address, mac) in desired.neighbors.sorted(by: { $0.key < $1.key }) where neighbors[address] != mac {
            try netlink.replaceNeighbor(Neighbor(index: vxlanIndex, address: address, mac: mac, state: .permanent))
            report.neighborsAdded.append(address)
        }
        return report
    }

    private func ignoringMissingEntry(_ body: () throws(NetlinkError) -> Void) throws(NetlinkError) {
        do { try body() } catch {
            if !error.isNotFound { throw error }
        }
    }
}
