import CNI
import IPAddressing

// The one place the IPAM module meets the CNI protocol module: error codes and result shape.

extension IPAMError: CNIErrorConvertible {
    public var cniError: CNIError {
        CNIError(CNIErrorCode(rawValue: UInt(cniCode)), message, details: details ?? "")
    }
}

extension IPAMResult {
    /// The abbreviated delegate result: no interfaces, no interface indexes.
    public func cniResult(version: String) -> CNIResult {
        CNIResult(
            cniVersion: version,
            ips: ips.map { CNIResult.IPConfig(address: $0.address, gateway: $0.gateway) },
            routes: routes.map { CNIResult.Route(dst: $0.destination, gw: $0.gateway) },
            dns: CNIResult.DNS(
                nameservers: dns.nameservers, domain: dns.domain ?? "", search: dns.search, options: dns.options))
    }
}
