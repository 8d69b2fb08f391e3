import CNI
import Firewall
import IPAddressing
import NetNS
import Netlink
import PierTables
import PluginSupport

/// The `portmap` plugin (chained only): publishes host ports to the container's addresses as
/// elements of the DNAT maps in `inet pier`, tagged with the attachment.
struct PortmapPlugin: CNIPlugin {
    /// Where every kernel access goes (`PluginKernel.system` in production).
    var kernel: PluginKernel = .system

    var about: String { "Pier portmap plugin" }

    func add(_ request: CNIRequest) throws -> CNIResult {
        guard var result = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin")
        }
        result.cniVersion = request.cniVersion
        let mappings = try request.config.runtimeConfig("portMappings", as: [PortMapping].self) ?? []
        let config = try request.config.decode(PortmapConfig.self)
        // Nothing to publish: touch nothing (the reference's lesson from xtables-lock storms).
        guard !mappings.isEmpty else { return result }
        let (v4, v6) = containerAddresses(result, ifName: request.ifName)
        let ports = try planned(mappings, v4: v4, v6: v6)
        guard !ports.isEmpty else { return result }
        try HostListeners.refuseOccupied(ports)

        let owner = Attachment(request).ownerTag
        let publishing = PortPublishing(client: try kernel.nftables())
        try withRollback { rollback in
            try publish(ports, owner: owner, config: config, publishing: publishing)
            rollback.push("unpublish the ports of \(owner)") { _ = try publishing.unpublish(owner: owner) }
            if config.snat, let v4, ports.contains(where: { $0.family == .v4 }) {
                try allowLocalhostAccess(to: v4)
            }
        }
        flushStaleUDPEntries(ports)
        return result
    }

    /// One atomic batch; a host port someone else holds refuses the whole ADD, naming the
    /// holder. Keys this very attachment holds (an ADD repeated without DEL) are replaced.
    func publish(
        _ ports: [PublishedPort], owner: String, config: PortmapConfig, publishing: PortPublishing
    ) throws {
        let refusal: FirewallError
        do {
            try publishing.publish(ports, owner: owner, snat: config.snat, masqueradeAll: config.masqAll)
            return
        } catch {
            refusal = error
        }
        guard refusal.isAlreadyExists else { throw refusal }
        let holders = try publishing.holders(of: ports)
        if let (port, holder) = holders.first(where: { $0.1 != owner }) {
            throw CNIError(
                .internalError, "failed to publish \(port): port is already allocated", details: "held by \(holder)")
        }
        try publishing.unpublish(owner: owner)
        try publishing.publish(ports, owner: owner, snat: config.snat, masqueradeAll: config.masqAll)
    }

    func delete(_ request: CNIRequest) throws {
        let owner = Attachment(request).ownerTag
        var removed: [PublishedPort] = []
        var failures = CNIErrorList()
        failures.attempt {
            let publishing = PortPublishing(client: try kernel.nftables())
            if let keys = mappingKeys(request) {
                // libcni passes the ADD's runtimeConfig again: look up exactly those keys.
                removed = try publishing.unpublish(keys, owner: owner)
            } else {
                // No (usable) mappings: find the elements by the attachment's tag alone, which
                // needs no prevResult, netns or runtimeConfig.
                removed = try publishing.unpublish(owner: owner)
            }
        }
        ConnectionTracking.forget(
            ConnectionTracking.containerAddresses(in: request.prevResult, ifName: request.ifName)
                + removed.map(\.container), kernel: kernel, failures: &failures)
        try failures.throwIfAny("portmap DEL incomplete")
        flushStaleUDPEntries(removed)
    }

    /// The map keys the request's `portMappings` would publish, for every family a mapping
    /// can take (the container side is a placeholder: keys do not depend on it); nil when the
    /// request carries no valid mappings.
    private func mappingKeys(_ request: CNIRequest) -> [PublishedPort]? {
        guard let mappings = try? request.config.runtimeConfig("portMappings", as: [PortMapping].self),
            !mappings.isEmpty, let anyV4 = IPAddress("0.0.0.0"), let anyV6 = IPAddress("::")
        else { return nil }
        return try? plan(mappings, v4: anyV4, v6: anyV6)
    }

    func check(_ request: CNIRequest) throws {
        guard let expected = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin")
        }
        let mappings = try request.config.runtimeConfig("portMappings", as: [PortMapping].self) ?? []
        guard !mappings.isEmpty else { return }
        let (v4, v6) = containerAddresses(expected, ifName: request.ifName)
        let ports = try planned(mappings, v4: v4, v6: v6)
        guard !ports.isEmpty else { return }
        let publishing = PortPublishing(client: try kernel.nftables())
        let present = Set(try publishing.published(by: Attachment(request).ownerTag))
        let missing = ports.filter { !present.contains($0) }
        guard missing.isEmpty else {
            throw CNIError(
                .internalError, "published ports missing: \(missing.map(\.description).joined(separator: ", "))")
        }
        let comments = try publishing.publishedRuleComments()
        let missingRules = PortPublishing.dnatRuleComments.filter { !comments.contains($0) }
        guard missingRules.isEmpty else {
            throw CNIError(.internalError, "DNAT rules missing in inet pier published: \(missingRules)")
        }
    }

    func garbageCollect(_ request: CNIRequest) throws {
        let valid = Set((request.config.validAttachments ?? []).map(\.ownerTag))
        let networkPrefix = Attachment.networkTag(request.config.name) + " "
        var failures = CNIErrorList()
        do {
            let publishing = PortPublishing(client: try kernel.nftables())
            for owner in try publishing.owners().sorted() where owner.hasPrefix(networkPrefix) && !valid.contains(owner)
            {
                do {
                    let removed = try publishing.unpublish(owner: owner)
                    ConnectionTracking.forget(removed.map(\.container), kernel: kernel, failures: &failures)
                    flushStaleUDPEntries(removed)
                } catch {
                    let cause = CNIError(converting: error)
                    failures.record(CNIError(cause.code, "\(owner): \(cause.msg)", details: cause.details))
                }
            }
        } catch {
            failures.record(error)
        }
        try failures.throwIfAny("portmap GC incomplete")
    }

    func status(_ request: CNIRequest) throws {
        do {
            _ = try kernel.nftables().generation()
        } catch {
            throw CNIError(.pluginNotAvailable, "nftables is not usable: \(error)")
        }
    }

    func planned(_ mappings: [PortMapping], v4: IPAddress?, v6: IPAddress?) throws -> [PublishedPort] {
        do {
            return try plan(mappings, v4: v4, v6: v6)
        } catch .invalid(let message) {
            throw CNIError(.invalidNetworkConfig, message)
        }
    }

    /// The first IPv4 and IPv6 address of the container interface: entries pointing at an
    /// interface named `ifName` inside a sandbox, or at no interface at all (as the reference).
    func containerAddresses(_ result: CNIResult, ifName: String) -> (IPAddress?, IPAddress?) {
        let candidates = result.ips.filter { ip in
            guard let index = ip.interface else { return true }
            guard result.interfaces.indices.contains(index) else { return false }
            let interface = result.interfaces[index]
            return interface.name == ifName && !(interface.sandbox ?? "").isEmpty
        }
        return (
            candidates.first { $0.family == .v4 }?.address.address,
            candidates.first { $0.family == .v6 }?.address.address
        )
    }

    /// `127.0.0.1:hostPort` from the host: after DNAT the packet leaves through the host
    /// interface that routes to the container with a loopback source, which the kernel drops
    /// unless `route_localnet` is on for that interface (only that one; IPv6 has no equivalent).
    private func allowLocalhostAccess(to container: IPAddress) throws {
        let netlink = try kernel.hostNetlink()
        let routes = try netlink.routes(family: .v4).filter {
            $0.destination.contains(container) && $0.outputIndex != nil
        }
        guard let route = routes.max(by: { $0.destination.length < $1.destination.length }),
            let index = route.outputIndex
        else { return }
        // Read first: every write is a link change that makes the kernel walk the host's IPv6
        // routes. Over netlink: a /proc/sys lookup slows down with every namespace on the host.
        guard try netlink.link(index: index).ipv4Setting(.routeLocalnet) != 1 else { return }
        try netlink.setIPv4DeviceConfig(index: index, [.routeLocalnet: 1])
    }

    /// UDP has no connection end: entries created before the port was published (or while it
    /// pointed at another container) would keep steering datagrams to the old destination.
    /// Best effort, as in the reference: a failure here is logged, not fatal.
    private func flushStaleUDPEntries(_ ports: [PublishedPort]) {
        let udp = Set(ports.filter { $0.ipProtocol == .udp }.map { PortKey(family: $0.family, port: $0.hostPort) })
        guard !udp.isEmpty else { return }
        do {
            let conntrack = try kernel.conntrack()
            for key in udp.sorted(by: { $0.port < $1.port }) {
                try conntrack.forgetFlows(
                    protocolNumber: IPProtocol.udp.rawValue, destinationPort: key.port, family: key.family)
            }
        } catch {
            cniLog("portmap: could not delete stale UDP conntrack entries: \(error)")
        }
    }
}

private struct PortKey: Hashable {
    var family: IPFamily
    var port: UInt16
}
