import CNI
import IPAddressing
import NetNS
import Netlink
import PluginSupport

/// Host networking mode (Docker's `--net=host`): the container runs in the host's own network
/// namespace, so there is nothing to create. ADD only proves that it is so and describes the
/// host's network as the Result, for runtimes and chained plugins that read it.
enum HostNetworking {
    /// Code 7 unless `path` is the plugin's own network namespace: in any other netns this
    /// config would silently give the container no network at all.
    static func requireHostNamespace(_ path: String, kernel: PluginKernel) throws {
        let target = try kernel.openNamespace(path)
        let own = try kernel.currentNamespace()
        guard target.isSame(as: own) else {
            throw CNIError(
                .invalidNetworkConfig,
                "host networking mode needs CNI_NETNS to be the host's own network namespace, but \(path) is"
                    + " another one; set \"device\" (or hwaddr, kernelpath, pciBusID) to move a host interface"
                    + " into a container instead")
        }
    }

    /// The host's interfaces (no sandbox: they are host-side), its global addresses and its
    /// main-table unicast routes, IPv4 and IPv6.
    static func describeHost(cniVersion: String, kernel: PluginKernel) throws -> CNIResult {
        let netlink = try kernel.hostNetlink()
        let links = try netlink.links().sorted { $0.index < $1.index }
        var result = CNIResult(cniVersion: cniVersion)
        var positions: [Int32: Int] = [:]
        for link in links {
            positions[link.index] = result.interfaces.count
            // Loopback's all-zero address is no MAC; the reference omits empty MACs too.
            let mac = link.mac.flatMap { $0.bytes.allSatisfy { $0 == 0 } ? nil : $0.description }
            result.interfaces.append(
                CNIResult.Interface(name: link.name, mac: mac, mtu: link.mtu.map { Int($0) }))
        }
        var routes: [Netlink.Route] = []
        for family in [IPFamily.v4, .v6] {
            // Unicast only: the main table also holds unreachable/blackhole/prohibit entries,
            // which a Result cannot express.
            routes += try netlink.routes(family: family).filter { $0.type == 1 }
        }
        // Scope 0 (global): link-local and host-scoped (loopback) addresses are not the host's
        // addresses on any network a container would talk about.
        for address in try netlink.addresses() where address.scope == 0 {
            guard let position = positions[address.index] else { continue }
            result.ips.append(
                CNIResult.IPConfig(
                    address: address.prefix, gateway: gateway(for: address, routes: routes), interface: position))
        }
        for route in routes {
            var entry = CNIResult.Route(dst: route.destination, gw: route.gateway)
            entry.priority = route.metric.map { Int($0) }
            if let scope = route.scope, scope != .universe { entry.scope = Int(scope.rawValue) }
            result.routes.append(entry)
        }
        return result
    }

    /// The gateway of a default route out of the address's own link that the address's
    /// subnet reaches directly, as a Result's `ips[].gateway` means it.
    private static func gateway(for address: Address, routes: [Netlink.Route]) -> IPAddress? {
        routes.first { route in
            guard route.isDefault, route.outputIndex == address.index, let gateway = route.gateway else { return false }
            return address.prefix.contains(gateway)
        }?.gateway
    }
}
