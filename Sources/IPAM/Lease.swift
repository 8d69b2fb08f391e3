import IPAddressing

/// One reserved address and who holds it.
public struct Lease: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let containerID: String
    /// nil for a legacy host-local record that holds only the container ID.
    public let ifname: String?
    /// The host that reserved it (cluster mode only).
    public let host: String?
    /// The stored record, so a release can be conditional on it still being this one.
    let recordValue: String?

    public init(address: IPAddress, containerID: String, ifname: String?, host: String? = nil) {
        self.init(address: address, containerID: containerID, ifname: ifname, host: host, recordValue: nil)
    }

    init(address: IPAddress, containerID: String, ifname: String?, host: String?, recordValue: String?) {
        self.address = address
        self.containerID = containerID
        self.ifname = ifname
        self.host = host
        self.recordValue = recordValue
    }

    public var description: String {
        "\(address) -> \(containerID)/\(ifname ?? "?")" + (host.map { " on \($0)" } ?? "")
    }

    /// True when this lease belongs to `attachment`: the exact pair, or a legacy record with
    /// the same container ID when `includingLegacy`.
    func isHeld(by attachment: LeaseOwner, includingLegacy: Bool) -> Bool {
        guard containerID == attachment.containerID else { return false }
        if let ifname { return ifname == attachment.ifname }
        return includingLegacy
    }
}

/// Where leases live. The allocation logic (`AddressManager`) is the same for every backend.
public protocol LeaseBackend: AnyObject {
    /// Runs `body` with whatever exclusion the backend needs for a read-decide-write cycle
    /// (the disk store's flock); stores with atomic conditional writes need none.
    func exclusively<T>(_ body: () throws(IPAMError) -> T) throws(IPAMError) -> T

    /// Every lease in the network (all hosts' in cluster mode, so none is handed out twice).
    func leases() throws(IPAMError) -> [Lease]

    /// What ADD and DEL of `owner` must see: every lease, or, from a store that can tell that
    /// no other writer has been at work, every lease `owner` holds and possibly no other (then
    /// only `reserve` tells whether an address is free). Called under `exclusively`.
    func leases(concerning owner: LeaseOwner) throws(IPAMError) -> [Lease]

    /// True when `address` is certainly taken (a cheap look before `recordHandOut` and
    /// `reserve`; false when unsure).
    func isTaken(_ address: IPAddress) -> Bool

    /// Reserves `address` for `attachment` unless it is taken; false when taken.
    func reserve(_ address: IPAddress, for attachment: LeaseOwner) throws(IPAMError) -> Bool

    /// Releases a lease returned by `leases()`, only if it is still that lease.
    func release(_ lease: Lease) throws(IPAMError)

    /// The round-robin marker of range set `index`, if recorded and readable.
    func lastReserved(rangeSetIndex index: Int) -> IPAddress?

    func recordLastReserved(_ address: IPAddress, rangeSetIndex index: Int) throws(IPAMError)

    /// True for leases this host manages (DEL and GC never touch other hosts' leases).
    func isLocal(_ lease: Lease) -> Bool

    /// nil when the store can take new leases, else why not.
    func unavailableReason() -> String?

    /// Called under `exclusively` before `address` of range set `index` is reserved: records
    /// that it is being handed out, and is true only when this store knows it never handed
    /// the address out before (so no peer can hold a neighbour entry for it). False when it
    /// cannot tell.
    func recordHandOut(_ address: IPAddress, in rangeSet: RangeSet, rangeSetIndex index: Int) -> Bool
}

extension LeaseBackend {
    public func leases(concerning owner: LeaseOwner) throws(IPAMError) -> [Lease] { try leases() }

    public func isTaken(_ address: IPAddress) -> Bool { false }

    public func recordHandOut(_ address: IPAddress, in rangeSet: RangeSet, rangeSetIndex index: Int) -> Bool {
        false
    }
}
