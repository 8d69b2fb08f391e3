import CNI
import ClusterStore
import IPAddressing

/// The IPAM verbs over one validated configuration. Each method is one plugin invocation.
public final class AddressManager {
    public let config: IPAMSettings
    /// nil in static mode, where nothing is recorded.
    public let backend: (any LeaseBackend)?

    /// Opens the backend the configuration names (no files are touched until a verb runs).
    public convenience init(config: IPAMSettings) throws(IPAMError) {
        switch config.mode {
        case .fixed:
            self.init(config: config, backend: nil)
        case .ranges(let dataDir):
            self.init(
                config: config,
                backend: DiskLeaseStore(
                    dataDir: dataDir, network: config.networkName, rangeSetCount: config.rangeSets.count))
        case .cluster(let storeConfig):
            let store: any ClusterStore
            let host: String
            do {
                host = try storeConfig.resolvedHost()
                store = try storeConfig.open()
            } catch {
                throw ClusterLeaseStore.wrap(error, "cannot open cluster store")
            }
            self.init(config: config, backend: ClusterLeaseStore(store: store, host: host, network: config.networkName))
        }
    }

    public init(config: IPAMSettings, backend: (any LeaseBackend)?) {
        self.config = config
        self.backend = backend
    }

    // MARK: ADD

    /// Reserves one address per range set (or returns the static addresses).
    public func add(_ attachment: LeaseOwner) throws(IPAMError) -> IPAMResult {
        try attachment.validate()
        guard let backend else {
            guard case .fixed(let addresses) = config.mode else { return result([]) }
            return result(addresses.map { IPAMResult.IP(address: $0.address, gateway: $0.gateway) })
        }
        let requests = try assignRequests()
        return try backend.exclusively { () throws(IPAMError) -> IPAMResult in
            // Possibly only the attachment's own leases: `reserve` then tells what is free.
            let leases = try backend.leases(concerning: attachment)
            var taken = Set(leases.map(\.address))
            var reserved: [Lease] = []
            var ips: [IPAMResult.IP] = []
            for (index, rangeSet) in config.rangeSets.enumerated() {
                do throws(IPAMError) {
                    let (address, isFirstUse) = try allocate(
                        in: rangeSet, index: index, requested: requests[index], for: attachment, leases: leases,
                        taken: &taken, backend: backend)
                    reserved.append(
                        Lease(address: address, containerID: attachment.containerID, ifname: attachment.ifname))
                    // The marker is a hint: failing to write it must not fail the ADD.
                    try? backend.recordLastReserved(address, rangeSetIndex: index)
                    guard let range = rangeSet.range(for: address),
                        let prefix = IPPrefix(address: address, length: range.subnet.length)
                    else { throw IPAMError(.io, "internal: \(address) outside range set \(rangeSet)") }
                    ips.append(IPAMResult.IP(address: prefix, gateway: range.gateway, isFirstUse: isFirstUse))
                } catch {
                    rollBack(reserved, for: attachment, backend: backend)
                    throw IPAMError(
                        error.kind, "failed to allocate for range \(index): \(error.message)", details: error.details,
                        errno: error.errno)
                }
            }
            return result(ips)
        }
    }

    /// Matches each requested address to the range set that contains it, before anything
    /// is written, so a bad request leaves the store untouched.
    private func assignRequests() throws(IPAMError) -> [IPAddress?] {
        var assigned = [IPAddress?](repeating: nil, count: config.rangeSets.count)
        for address in config.requestedAddresses {
            guard let index = config.rangeSets.firstIndex(where: { $0.contains(address) }) else {
                let sets = config.rangeSets.map(\.description).joined(separator: "; ")
                throw IPAMError(
                    .addressUnavailable, "requested IP address \(address) is not in any range set (\(sets))")
            }
            if let other = assigned[index] {
                throw IPAMError(
                    .addressUnavailable,
                    "requested IP addresses \(other) and \(address) fall in the same range set \(config.rangeSets[index]); one address per range set"
                )
            }
            if config.rangeSets[index].gateways.contains(address) {
                throw IPAMError(.addressUnavailable, "requested IP address \(address) is the gateway of its range")
            }
            assigned[index] = address
        }
        return assigned
    }

    private func allocate(
        in rangeSet: RangeSet, index: Int, requested: IPAddress?, for attachment: LeaseOwner, leases: [Lease],
        taken: inout Set<IPAddress>, backend: any LeaseBackend
    ) throws(IPAMError) -> (address: IPAddress, isFirstUse: Bool) {
        if let requested {
            let isFirstUse =
                !taken.contains(requested) && backend.recordHandOut(requested, in: rangeSet, rangeSetIndex: index)
            guard !taken.contains(requested), try backend.reserve(requested, for: attachment) else {
                let holder = leases.first { $0.address == requested }.map {
                    " (held by \($0.containerID)/\($0.ifname ?? "?"))"
                }
                throw IPAMError(
                    .addressUnavailable,
                    "requested IP address \(requested) is not available in range set \(rangeSet)\(holder ?? "")")
            }
            taken.insert(requested)
            return (requested, isFirstUse)
        }
        // The spec forbids a second ADD for the same attachment without DEL; host-local refuses it.
        if let existing = leases.first(where: {
            backend.isLocal($0) && $0.isHeld(by: attachment, includingLegacy: false)
                && rangeSet.contains($0.address)
        }) {
            throw IPAMError(
                .addressUnavailable,
                "\(existing.address) has been allocated to \(attachment.containerID), duplicate allocation is not allowed"
            )
        }
        var candidates = CandidateIterator(rangeSet: rangeSet, lastReserved: backend.lastReserved(rangeSetIndex: index))
        while let candidate = candidates.next() {
            if taken.contains(candidate) || backend.isTaken(candidate) { continue }
            taken.insert(candidate)
            let isFirstUse = backend.recordHandOut(candidate, in: rangeSet, rangeSetIndex: index)
            // Another host (cluster mode) may have taken it since we listed: try the next.
            if try backend.reserve(candidate, for: attachment) { return (candidate, isFirstUse) }
        }
        throw IPAMError(.exhausted, "no IP addresses available in range set: \(rangeSet)")
    }

    private func rollBack(_ leases: [Lease], for attachment: LeaseOwner, backend: any LeaseBackend) {
        // Release through a fresh listing so cluster stores get the exact stored records.
        guard let current = try? backend.leases(concerning: attachment) else { return }
        for lease in current
        where leases.contains(where: { $0.address == lease.address }) && backend.isLocal(lease)
            && lease.isHeld(by: attachment, includingLegacy: false)
        {
            try? backend.release(lease)
        }
    }

    private func result(_ ips: [IPAMResult.IP]) -> IPAMResult {
        IPAMResult(ips: ips, routes: config.routes, dns: config.dns)
    }

    // MARK: DEL

    /// Releases every lease of `attachment`; succeeds when there is none (DEL is idempotent).
    /// Legacy ID-only leases are released when no exact record exists, as host-local does.
    @discardableResult
    public func release(_ attachment: LeaseOwner) throws(IPAMError) -> [Lease] {
        try attachment.validate()
        guard let backend else { return [] }
        return try backend.exclusively { () throws(IPAMError) -> [Lease] in
            let local = try backend.leases(concerning: attachment).filter { backend.isLocal($0) }
            var targets = local.filter { $0.isHeld(by: attachment, includingLegacy: false) }
            if targets.isEmpty {
                targets = local.filter { $0.containerID == attachment.containerID && $0.ifname == nil }
            }
            return try releaseAll(targets, backend: backend)
        }
    }

    /// Releases each lease, continuing past failures and reporting them together.
    private func releaseAll(_ leases: [Lease], backend: any LeaseBackend) throws(IPAMError) -> [Lease] {
        var failures: [IPAMError] = []
        var released: [Lease] = []
        for lease in leases {
            do {
                try backend.release(lease)
                released.append(lease)
            } catch {
                failures.append(error)
            }
        }
        // The combined error keeps the kind `CNIErrorList` would choose: an unreachable store
        // stays "try again later" instead of becoming an I/O failure.
        if let chosen = CNIErrorList.mostSpecific(failures.map(\.cniError.code)) {
            throw IPAMError(
                failures[chosen].kind, "failed to release \(failures.count) of \(leases.count) leases",
                details: failures.map(\.description).joined(separator: "; "))
        }
        return released
    }

    // MARK: CHECK

    /// Ranges: the attachment holds a lease. Static: every configured address appears in
    /// `prevResult`.
    public func check(_ attachment: LeaseOwner) throws(IPAMError) {
        try attachment.validate()
        guard let backend else {
            guard case .fixed(let addresses) = config.mode else { return }
            for entry in addresses where !config.previousAddresses.contains(entry.address) {
                throw IPAMError(.notFound, "static address \(entry.address) is missing from prevResult")
            }
            return
        }
        let held = try backend.exclusively { () throws(IPAMError) -> [Lease] in
            try backend.leases().filter { backend.isLocal($0) && $0.isHeld(by: attachment, includingLegacy: true) }
        }
        guard !held.isEmpty else {
            throw IPAMError(.notFound, "no IP address allocated to \(attachment) in network \(config.networkName)")
        }
    }

    // MARK: GC

    /// Releases every local lease whose attachment is not in `valid` (an empty list releases
    /// everything). Returns what was released.
    @discardableResult
    public func collectGarbage(keeping valid: [LeaseOwner]) throws(IPAMError) -> [Lease] {
        guard let backend else { return [] }
        let validPairs = Set(valid)
        let validIDs = Set(valid.map(\.containerID))
        return try backend.exclusively { () throws(IPAMError) -> [Lease] in
            let stale = try backend.leases().sorted { $0.address < $1.address }.filter { lease in
                guard backend.isLocal(lease) else { return false }
                if let ifname = lease.ifname {
                    return !validPairs.contains(LeaseOwner(containerID: lease.containerID, ifname: ifname))
                }
                return !validIDs.contains(lease.containerID)
            }
            return try releaseAll(stale, backend: backend)
        }
    }

    // MARK: STATUS

    /// Succeeds when an ADD could be served: the store is writable and every range set has
    /// a free address.
    public func status() throws(IPAMError) {
        guard let backend else { return }
        if let reason = backend.unavailableReason() { throw IPAMError(.unavailable, reason) }
        let taken = Set(try backend.leases().map(\.address))
        for (index, rangeSet) in config.rangeSets.enumerated() {
            let candidates = CandidateIterator(
                rangeSet: rangeSet, lastReserved: backend.lastReserved(rangeSetIndex: index))
            guard candidates.contains(where: { !taken.contains($0) }) else {
                throw IPAMError(.unavailable, "no IP addresses available in range set \(index): \(rangeSet)")
            }
        }
    }

    /// Every lease in the network, for diagnostics.
    public func leases() throws(IPAMError) -> [Lease] {
        guard let backend else { return [] }
        return try backend.leases().sorted { $0.address < $1.address }
    }
}
