import CNI
import ClusterStore
import IPAddressing
import PierState

/// A route handed back in the result, copied from the config.
public struct RouteSpec: Sendable, Hashable {
    public let destination: IPPrefix
    public let gateway: IPAddress?

    public init(destination: IPPrefix, gateway: IPAddress?) {
        self.destination = destination
        self.gateway = gateway
    }
}

/// A fixed address (static mode): returned as configured, never leased.
public struct StaticAddress: Sendable, Hashable {
    public let address: IPPrefix
    public let gateway: IPAddress?

    public init(address: IPPrefix, gateway: IPAddress?) {
        self.address = address
        self.gateway = gateway
    }
}

/// Where allocations are recorded.
public enum AllocationMode: Sendable, Hashable {
    /// host-local: a lease directory per network under `dataDir`.
    case ranges(dataDir: String)
    /// Ranges allocated through the shared cluster store, unique across hosts.
    case cluster(ClusterStoreConfig)
    /// static: the configured addresses, nothing recorded.
    case fixed([StaticAddress])
}

/// A validated IPAM configuration plus the per-request inputs found on stdin.
public struct IPAMSettings: Sendable {
    public static let defaultDataDir = DefaultPaths.leaseDirectory

    public let cniVersion: String
    public let networkName: String
    public let rangeSets: [RangeSet]
    public let mode: AllocationMode
    public let routes: [RouteSpec]
    public let dns: DNSSettings
    /// Requested addresses for range allocation, merged from `runtimeConfig.ips`,
    /// `args.cni.ips` and CNI_ARGS `IP=`, deduplicated in that order.
    public let requestedAddresses: [IPAddress]
    /// Addresses of `prevResult.ips` (used by static CHECK).
    public var previousAddresses: [IPPrefix]

    /// Parses and validates stdin: JSON that does not parse, or is no object, is a decoding failure (6).
    /// - Parameters:
    ///   - environmentIPs: CNI_ARGS `IP=` values (comma-separated lists are split).
    ///   - environmentGateways: CNI_ARGS `GATEWAY=` values (static mode).
    public init(json: [UInt8], environmentIPs: [String] = [], environmentGateways: [String] = []) throws(IPAMError) {
        let document: JSONValue
        do {
            document = try JSONValue(parsing: json)
        } catch {
            throw IPAMError(.decode, "cannot decode network config", details: error.description)
        }
        guard let object = document.objectValue else {
            throw IPAMError(.decode, "cannot decode network config", details: "expected a JSON object")
        }
        try self.init(config: object, environmentIPs: environmentIPs, environmentGateways: environmentGateways)
    }

    /// Validates an already parsed stdin (the plugin's `NetworkConfig.raw`): a wrongly typed key is an
    /// invalid config (7) that names the key, as the CNI layer classifies it.
    public init(config: JSONObject, environmentIPs: [String] = [], environmentGateways: [String] = [])
        throws(IPAMError)
    {
        let raw: RawNetworkConfig
        do {
            raw = try RawNetworkConfig(JSONReader(config, code: .invalidNetworkConfig, context: "invalid ipam config"))
        } catch {
            throw IPAMError(.invalidConfig, error.msg)
        }
        try self.init(raw: raw, environmentIPs: environmentIPs, environmentGateways: environmentGateways)
    }

    init(raw: RawNetworkConfig, environmentIPs: [String], environmentGateways: [String]) throws(IPAMError) {
        cniVersion = raw.cniVersion ?? "0.1.0"
        guard let name = raw.name, !name.isEmpty else { throw IPAMError(.invalidConfig, "network name is missing") }
        guard CNIValidation.isValidIdentifier(name) else {
            throw IPAMError(.invalidConfig, "invalid network name \"\(name)\": want ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$")
        }
        networkName = name
        guard let ipam = raw.ipam else { throw IPAMError(.invalidConfig, "missing \"ipam\" section") }

        routes = try Self.parseRoutes(ipam.routes ?? [])
        var dns = DNSSettings()
        if let resolvConf = ipam.resolvConf, !resolvConf.isEmpty {
            dns = try DNSSettings.load(resolvConf: resolvConf)
        } else if let raw = ipam.dns {
            dns = DNSSettings(
                nameservers: raw.nameservers ?? [], domain: raw.domain, search: raw.search ?? [],
                options: raw.options ?? [])
        }
        self.dns = dns
        previousAddresses = (raw.prevResult?.ips ?? []).compactMap { $0.address.flatMap { IPPrefix($0) } }

        let envIPs = environmentIPs.flatMap { $0.split(separator: ",").map { String($0) } }.filter { !$0.isEmpty }
        let runtimeIPs = raw.runtimeConfig?.ips ?? []
        let argsIPs = raw.args?.cni?.ips ?? []

        let hasRanges =
            ipam.ranges != nil || ipam.subnet != nil || raw.runtimeConfig?.ipRanges != nil
        if ipam.type == "static" || ipam.addresses != nil {
            guard !hasRanges else {
                throw IPAMError(
                    .invalidConfig, "ipam has both static \"addresses\" and ranges; configure one or the other")
            }
            mode = .fixed(
                try Self.staticAddresses(
                    configured: ipam.addresses ?? [], runtimeIPs: runtimeIPs, argsIPs: argsIPs, envIPs: envIPs,
                    envGateways: environmentGateways))
            rangeSets = []
            requestedAddresses = []
            try Self.checkFamilyCount(
                version: cniVersion, families: Self.fixedFamilies(mode), what: "static addresses")
            return
        }

        rangeSets = try Self.parseRangeSets(ipam: ipam, runtimeRanges: raw.runtimeConfig?.ipRanges)
        try Self.checkFamilyCount(version: cniVersion, families: rangeSets.map(\.family), what: "range sets")
        requestedAddresses = try Self.parseRequested(runtimeIPs + argsIPs + envIPs)
        if let store = ipam.store {
            mode = .cluster(store)
        } else {
            let dataDir = ipam.dataDir.flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultDataDir
            guard dataDir.hasPrefix("/") else {
                throw IPAMError(.invalidConfig, "dataDir \"\(dataDir)\" must be an absolute path")
            }
            mode = .ranges(dataDir: dataDir)
        }
    }

    // MARK: Pieces

    static func parseRangeSets(ipam: RawIPAM, runtimeRanges: [[RawRange]]?) throws(IPAMError) -> [RangeSet] {
        // host-local order: runtimeConfig.ipRanges, then the legacy single range, then ranges.
        var rawSets: [[RawRange]] = runtimeRanges ?? []
        if let subnet = ipam.subnet {
            rawSets.append([
                RawRange(subnet: subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway)
            ])
        } else if ipam.rangeStart != nil || ipam.rangeEnd != nil || ipam.gateway != nil {
            throw IPAMError(.invalidConfig, "rangeStart, rangeEnd or gateway given without subnet")
        }
        rawSets += ipam.ranges ?? []
        guard !rawSets.isEmpty else {
            throw IPAMError(.invalidConfig, "no IP ranges specified: give \"ranges\", \"subnet\" or \"addresses\"")
        }
        var sets: [RangeSet] = []
        for (index, rawSet) in rawSets.enumerated() {
            var ranges: [AddressRange] = []
            for rawRange in rawSet {
                guard let subnet = rawRange.subnet else {
                    throw IPAMError(.invalidConfig, "range set \(index): a range has no subnet")
                }
                do {
                    ranges.append(
                        try AddressRange(
                            subnet: subnet, rangeStart: rawRange.rangeStart, rangeEnd: rawRange.rangeEnd,
                            gateway: rawRange.gateway))
                } catch {
                    throw IPAMError(.invalidConfig, "range set \(index): \(error.message)")
                }
            }
            let set: RangeSet
            do {
                set = try RangeSet(ranges)
            } catch {
                throw IPAMError(.invalidConfig, "range set \(index): \(error.message)")
            }
            if let other = sets.firstIndex(where: { $0.overlaps(set) }) {
                throw IPAMError(
                    .invalidConfig, "range set \(index) (\(set)) overlaps range set \(other) (\(sets[other]))")
            }
            sets.append(set)
        }
        return sets
    }

    static func parseRoutes(_ raw: [RawRoute]) throws(IPAMError) -> [RouteSpec] {
        var routes: [RouteSpec] = []
        for route in raw {
            guard let dstText = route.dst, let dst = IPPrefix(dstText) else {
                throw IPAMError(.invalidConfig, "invalid route dst \"\(route.dst ?? "")\": want a CIDR")
            }
            var gateway: IPAddress?
            if let gwText = route.gw, !gwText.isEmpty {
                guard let gw = IPAddress(gwText), gw.family == dst.family else {
                    throw IPAMError(.invalidConfig, "invalid route gw \"\(gwText)\" for \(dstText)")
                }
                gateway = gw
            }
            routes.append(RouteSpec(destination: dst, gateway: gateway))
        }
        return routes
    }

    static func parseRequested(_ texts: [String]) throws(IPAMError) -> [IPAddress] {
        var result: [IPAddress] = []
        for text in texts {
            // Requests may carry a prefix ("10.1.2.3/24"); only the address is requested.
            guard let prefix = IPPrefix(text, allowBareAddress: true) else {
                throw IPAMError(.addressUnavailable, "invalid requested IP address \"\(text)\"")
            }
            if !result.contains(prefix.address) { result.append(prefix.address) }
        }
        return result
    }

    static func staticAddresses(
        configured: [RawStaticAddress], runtimeIPs: [String], argsIPs: [String], envIPs: [String],
        envGateways: [String]
    ) throws(IPAMError) -> [StaticAddress] {
        func prefix(_ text: String) throws(IPAMError) -> IPPrefix {
            guard let value = IPPrefix(text) else {
                throw IPAMError(.invalidConfig, "invalid static address \"\(text)\": want CIDR like 10.1.2.3/24")
            }
            return value
        }
        var addresses: [StaticAddress] = []
        // static's precedence: runtimeConfig.ips, else args.cni.ips, else config + CNI_ARGS.
        if !runtimeIPs.isEmpty || !argsIPs.isEmpty {
            for text in runtimeIPs.isEmpty ? argsIPs : runtimeIPs {
                addresses.append(StaticAddress(address: try prefix(text), gateway: nil))
            }
        } else {
            for entry in configured {
                guard let text = entry.address else {
                    throw IPAMError(.invalidConfig, "static address without \"address\"")
                }
                let address = try prefix(text)
                var gateway: IPAddress?
                if let gwText = entry.gateway, !gwText.isEmpty {
                    guard let gw = IPAddress(gwText), gw.family == address.family else {
                        throw IPAMError(.invalidConfig, "invalid gateway \"\(gwText)\" for static address \(text)")
                    }
                    gateway = gw
                }
                addresses.append(StaticAddress(address: address, gateway: gateway))
            }
            for text in envIPs { addresses.append(StaticAddress(address: try prefix(text), gateway: nil)) }
        }
        let gateways = envGateways.flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        for text in gateways {
            guard let gateway = IPAddress(text) else {
                throw IPAMError(.invalidArgument, "invalid GATEWAY \"\(text)\" in CNI_ARGS")
            }
            addresses = addresses.map { entry in
                entry.address.network.contains(gateway)
                    ? StaticAddress(address: entry.address, gateway: gateway) : entry
            }
        }
        guard !addresses.isEmpty else { throw IPAMError(.invalidConfig, "static ipam has no addresses") }
        return addresses
    }

    static func fixedFamilies(_ mode: AllocationMode) -> [IPFamily] {
        guard case .fixed(let addresses) = mode else { return [] }
        return addresses.map(\.address.family)
    }

    /// 0.1.0 and 0.2.0 results hold one address per family.
    static func checkFamilyCount(version: String, families: [IPFamily], what: String) throws(IPAMError) {
        guard version == "0.1.0" || version == "0.2.0" else { return }
        for family in IPFamily.allCases where families.filter({ $0 == family }).count > 1 {
            throw IPAMError(
                .invalidConfig, "\(what): more than one \(family) address needs cniVersion 0.3.0 or later")
        }
    }
}
