import CNI
import IPAddressing
import Netlink

extension CNIResult {
    /// A result for `cniVersion` carrying the IPAM delegate's addresses (attached to the
    /// interface at `interfaceIndex` of `interfaces`), routes and DNS. IPAM returning no
    /// address at all is a delegate bug, not a network without L3.
    public static func fromIPAM(_ ipam: CNIResult, cniVersion: String, interfaceIndex: Int) throws -> CNIResult {
        guard !ipam.ips.isEmpty else { throw CNIError(.internalError, "IPAM plugin returned no IP addresses") }
        var result = CNIResult(cniVersion: cniVersion, routes: ipam.routes, dns: ipam.dns)
        result.ips = ipam.ips.map { ip in
            var ip = ip
            ip.interface = interfaceIndex
            return ip
        }
        return result
    }

    /// The reference bridge's gateway rules: with `isGateway`, an address IPAM gave no
    /// gateway gets its subnet's first address; with `isDefaultGateway`, each family gets a
    /// default route through its gateway unless IPAM already returned one with a gateway.
    public mutating func applyGatewayDefaults(isGateway: Bool, isDefaultGateway: Bool) {
        if isGateway {
            for index in ips.indices where ips[index].gateway == nil {
                ips[index].gateway = ips[index].address.network.firstAddress.advanced(by: 1)
            }
        }
        guard isDefaultGateway else { return }
        for ip in ips {
            guard let gateway = ip.gateway else { continue }
            let hasDefault = routes.contains { $0.dst.length == 0 && $0.dst.family == ip.family && $0.gw != nil }
            if !hasDefault { routes.append(CNIResult.Route(dst: Netlink.Route.anyPrefix(ip.family), gw: gateway)) }
        }
    }
}
