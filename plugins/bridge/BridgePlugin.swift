import CNI
import Firewall
import IPAM
import IPAddressing
import NetNS
import Netlink
import PierTables
import PluginSupport

/// The `bridge` plugin: a veth pair from a Linux bridge into the container, an address from
/// the IPAM delegate, the gateway on the bridge, masquerade and isolation in `inet pier`.
struct BridgePlugin: CNIPlugin {
    /// Where every kernel access goes (`PluginKernel.system` in production).
    var kernel: PluginKernel = .system

    var about: String { "Pier bridge plugin" }

    func add(_ request: CNIRequest) throws -> CNIResult {
        let config = try request.config.decode(BridgeConfig.self)
        try validate(config, request)
        let mac = try requestedMAC(request)
        if config.usesVLANs { try VLANSupport.requireKernelSupport(kernel) }

        let attachment = Attachment(request)
        let containerNS = try kernel.openNamespace(request.netns)
        let host = try kernel.hostNetlink()
        let container = try kernel.netlink(containerNS)
        try requireNoContainerInterface(named: request.ifName, in: container)

        let bridgeExisted = try host.linkIfPresent(named: config.bridge) != nil
        let bridge = try BridgeDevice.ensure(config.bridgeSpec, netlink: host, kernel: kernel)
        // ADD leaves nothing behind when it fails (the runtime will DEL, but ADD promises to
        // clean up after itself): each step below pushes its undo.
        return try withRollback { rollback in
            // Runs last: the network-level state this ADD may have made, unless another
            // attachment uses it by now.
            rollback.push("remove the unused network state of \(config.bridge)") {
                try releaseNetworkIfUnused(
                    bridge: config.bridge, networkTag: attachment.networkTag, deleteBridge: !bridgeExisted, host: host)
            }
            let veth = VethSetup(host: host, container: container, containerNamespace: containerNS)
            let ports = try veth.create(attachment: attachment, bridge: bridge, options: config.vethOptions, mac: mac) {
                port in
                if config.usesVLANs { try VLANSupport.apply(config, port: port, netlink: host) }
            }
            rollback.push("delete \(ports.host.name)") { try host.deleteLink(index: ports.host.index) }
            var result = CNIResult(cniVersion: request.cniVersion)
            if request.config.ipam != nil {
                let (ipamResult, firstUse) = try IPAMCall.addNotingFirstUse(request)
                rollback.push("release the addresses") { try IPAMCall.delete(request) }
                // The container interface is the third in the result: bridge, host veth, container.
                result = try .fromIPAM(ipamResult, cniVersion: request.cniVersion, interfaceIndex: 2)
                try config.l3.configure(
                    &result, interfaceIndex: 2, link: ports.container,
                    setup: InterfaceSetup(namespace: containerNS, netlink: container, kernel: kernel), host: host
                ) {
                    // With an access VLAN the gateway lives on `<bridge>.<vlan>`, a port in that VLAN.
                    guard config.vlan != 0 else { return bridge }
                    return try VLANGateway.ensure(
                        bridge: bridge, vlan: UInt16(config.vlan), preserveDefaultVLAN: config.preserveDefaultVlan,
                        netlink: host)
                }
                // An address nobody ever had is in no peer's neighbour table: announcing it would
                // only flood a broadcast through every port of the bridge (~3 ms at 1,000 ports).
                veth.announce(
                    ports,
                    addresses: result.ips.filter { $0.interface == 2 }.map(\.address.address).filter {
                        !firstUse.contains($0)
                    })
            } else if !config.disableContainerInterface {
                try container.setLinkUp(index: ports.container.index)
            }
            let hostNow = try host.link(index: ports.host.index)
            let containerNow = try container.link(index: ports.container.index)
            result.describeInterfaces(
                request, hostSide: [try host.link(index: bridge.index), hostNow], container: containerNow)

            let firewall = try kernel.nftables()
            try NetworkRules(client: firewall, networkTag: attachment.networkTag).attach(
                bridge: config.bridge, masqueradeSubnets: config.ipMasq ? result.ips.map(\.address.network) : [],
                isolated: config.isolation, isInternal: config.isInternal)
            if config.macspoofchk, let containerMAC = containerNow.mac {
                rollback.push("remove the spoof check of \(hostNow.name)") {
                    try SpoofCheck(client: firewall).release(owner: attachment.ownerTag)
                }
                try SpoofCheck(client: firewall).protect(
                    port: hostNow.name, mac: containerMAC, owner: attachment.ownerTag)
            }
            return result
        }
    }

    func delete(_ request: CNIRequest) throws {
        // A config that does not parse is refused, as the reference bridge's DEL does.
        _ = try request.config.decode(BridgeConfig.self)
        let attachment = Attachment(request)
        var failures = CNIErrorList()
        // The host end is found from the attachment alone; deleting it removes the pair, so
        // this works when the netns is gone or CNI_NETNS is empty.
        failures.attempt { try VethSetup.deleteHostEnd(of: attachment, netlink: try kernel.hostNetlink()) }
        if !request.netns.isEmpty {
            do {
                let namespace = try kernel.openNamespace(request.netns)
                let container = try kernel.netlink(namespace)
                try ignoringMissing { try container.deleteLink(named: request.ifName) }
            } catch is NamespaceError {
                // Gone, or never more than a mount-point file (a runtime killed between
                // creating and mounting it): either way no link of ours can be in it, and the
                // host end, found by name above, is already deleted.
            } catch {
                failures.record(error)
            }
        }
        var released: [IPAddress] = []
        if request.config.ipam != nil { failures.attempt { released = try IPAMCall.delete(request) } }
        ConnectionTracking.forget(
            ConnectionTracking.containerAddresses(in: request.prevResult, ifName: request.ifName) + released,
            kernel: kernel, failures: &failures)
        // Spoof-check elements are removed whatever the config says now: it may have changed
        // since ADD, and the elements are found by the attachment's tag alone.
        failures.attempt { try SpoofCheck(client: try kernel.nftables()).release(owner: attachment.ownerTag) }
        try failures.throwIfAny("bridge DEL incomplete")
    }

    func check(_ request: CNIRequest) throws {
        let config = try request.config.decode(BridgeConfig.self)
        guard let expected = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "bridge CHECK needs prevResult")
        }
        if request.config.ipam != nil { try IPAMCall.check(request) }
        let host = try kernel.hostNetlink()
        guard let bridge = try host.linkIfPresent(named: config.bridge) else {
            throw CNIError(.internalError, "bridge \(config.bridge) is missing")
        }
        guard bridge.kind == .bridge else { throw CNIError(.internalError, "\(config.bridge) is not a bridge") }
        guard bridge.isPromiscuous == config.promiscMode else {
            throw CNIError(.internalError, "bridge \(config.bridge) promiscuous mode is not \(config.promiscMode)")
        }
        if let reported = expected.interfaces.first(where: { $0.name == config.bridge })?.mac,
            reported != bridge.mac?.description
        {
            throw CNIError(
                .internalError, "bridge \(config.bridge) MAC \(bridge.mac?.description ?? "none") != \(reported)")
        }
        let namespace = try kernel.openNamespace(request.netns)
        let container = try kernel.netlink(namespace)
        guard let link = try container.linkIfPresent(named: request.ifName) else {
            throw CNIError(.internalError, "interface \(request.ifName) is missing in \(request.netns)")
        }
        guard link.kind == .veth else { throw CNIError(.internalError, "\(request.ifName) is not a veth") }
        guard let hostEnd = try host.linkIfPresent(named: Attachment(request).hostVethName) else {
            throw CNIError(.internalError, "host veth \(Attachment(request).hostVethName) is missing")
        }
        guard hostEnd.masterIndex == bridge.index else {
            throw CNIError(.internalError, "host veth \(hostEnd.name) is not a port of \(config.bridge)")
        }
        guard hostEnd.linkIndex == link.index else {
            throw CNIError(.internalError, "host veth \(hostEnd.name) is not the peer of \(request.ifName)")
        }
        try InterfaceSetup(namespace: namespace, netlink: container, kernel: kernel)
            .verify(link, against: expected, ifName: request.ifName, netns: request.netns)
        let firewall = try kernel.nftables()
        if config.ipMasq {
            let rules = NetworkRules(client: firewall, networkTag: Attachment(request).networkTag)
            for ip in expected.ips where try !rules.isMasqueraded(ip.address.network) {
                throw CNIError(.internalError, "subnet \(ip.address.network) is not in the masquerade set")
            }
        }
        if config.macspoofchk, let mac = link.mac,
            try !SpoofCheck(client: firewall).isProtected(
                port: hostEnd.name, mac: mac, owner: Attachment(request).ownerTag)
        {
            throw CNIError(.internalError, "macspoofchk is not in place for \(hostEnd.name)")
        }
    }

    func garbageCollect(_ request: CNIRequest) throws {
        let valid = Set(request.config.validAttachments ?? [])
        var failures = CNIErrorList()
        let host = try kernel.hostNetlink()
        for link in try host.links() {
            guard let alias = link.alias, let owner = Attachment.fromLinkAlias(alias),
                owner.network == request.config.name, !valid.contains(owner)
            else { continue }
            failures.attempt { try ignoringMissing { try host.deleteLink(index: link.index) } }
        }
        failures.attempt {
            let spoofCheck = SpoofCheck(client: try kernel.nftables())
            let validTags = Set(valid.map(\.ownerTag))
            let networkPrefix = Attachment.networkTag(request.config.name) + " "
            for owner in try spoofCheck.owners() where owner.hasPrefix(networkPrefix) && !validTags.contains(owner) {
                try spoofCheck.release(owner: owner)
            }
        }
        // The bridge goes only when nothing uses it any more: no ports, no valid attachments.
        failures.attempt {
            let config = try request.config.decode(BridgeConfig.self)
            if valid.isEmpty {
                try releaseNetworkIfUnused(
                    bridge: config.bridge, networkTag: Attachment.networkTag(request.config.name), deleteBridge: true,
                    host: host)
            }
        }
        var released: [IPAddress] = []
        if request.config.ipam != nil { failures.attempt { released = try IPAMCall.garbageCollect(request) } }
        ConnectionTracking.forget(released, kernel: kernel, failures: &failures)
        try failures.throwIfAny("bridge GC incomplete")
    }

    func status(_ request: CNIRequest) throws {
        let config = try request.config.decode(BridgeConfig.self)
        try validate(config, request)
        if request.config.ipam != nil { try IPAMCall.status(request) }
    }

    /// Removes the network's `inet pier` elements, and the bridge itself when `deleteBridge`,
    /// once no attachment uses the bridge: only the network's own VLAN gateway ports (which do
    /// not keep it alive) are left on it.
    private func releaseNetworkIfUnused(
        bridge name: String, networkTag: String, deleteBridge: Bool, host: RouteNetlink
    ) throws {
        guard let bridge = try host.linkIfPresent(named: name), bridge.kind == .bridge else { return }
        let ports = try host.links().filter { $0.masterIndex == bridge.index }
        guard ports.allSatisfy({ VLANGateway.isGatewayPort($0, of: bridge) }) else { return }
        try NetworkRules(client: try kernel.nftables(), networkTag: networkTag).detach()
        guard deleteBridge else { return }
        for port in ports { try ignoringMissing { try host.deleteLink(index: port.index) } }
        try ignoringMissing { try host.deleteLink(index: bridge.index) }
    }

    private func validate(_ config: BridgeConfig, _ request: CNIRequest) throws {
        do {
            try config.validate(hasIPAM: request.config.ipam != nil)
        } catch .invalid(let message) {
            throw CNIError(.invalidNetworkConfig, message)
        }
    }
}
