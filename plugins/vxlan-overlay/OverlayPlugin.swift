import CNI
import ClusterStore
import Firewall
import IPAM
import IPAddressing
import NetNS
import Netlink
import Overlay
import PierTables
import PluginSupport

/// The `vxlan-overlay` plugin: one L2 network across hosts. Per host a bridge and a VXLAN
/// device (learning off, ARP proxy on); per container a veth on the bridge, an address from
/// `ipam` in cluster mode, and an endpoint record in the cluster store; per remote endpoint a
/// static FDB entry and a permanent neighbour entry on the VXLAN device.
struct OverlayPlugin: CNIPlugin {
    /// Where every kernel access goes (`PluginKernel.system` in production).
    var kernel: PluginKernel = .system

    var about: String { "Pier vxlan-overlay plugin" }

    func add(_ request: CNIRequest) throws -> CNIResult {
        let config = try request.config.decode(OverlayConfig.self)
        try config.validate(request)
        let mac = try requestedMAC(request)
        let context = try OverlayContext(request, config)
        let attachment = Attachment(request)

        // The store first: an unreachable store or a VNI clash fails before anything changes.
        _ = try context.storeCall { try context.registry.claimNetwork(context.networkRecord) }

        let host = try kernel.hostNetlink()
        let underlay = try Underlay.resolve(config.underlay, netlink: host)
        let mtu = underlay.overlayMTU(configured: config.mtu)
        let containerNS = try kernel.openNamespace(request.netns)
        let container = try kernel.netlink(containerNS)
        try requireNoContainerInterface(named: request.ifName, in: container)
        let devices = try NetworkDevices.ensure(
            network: request.config.name, config: config, underlay: underlay, mtu: mtu, netlink: host, kernel: kernel)

        // A failure undoes what was made; the endpoint is published last, so other hosts
        // never learn of an attachment that did not come up.
        return try withRollback { rollback in
            let veth = VethSetup(host: host, container: container, containerNamespace: containerNS)
            let ports =
                try veth
                .create(
                    attachment: attachment, bridge: devices.bridge,
                    options: VethSetup.Options(mtu: mtu, hairpin: config.hairpinMode), mac: mac)
            rollback.push("delete \(ports.host.name)") { try host.deleteLink(index: ports.host.index) }
            let ipamRequest = try request.withClusterIPAM(config)
            let ipamResult = try IPAMCall.add(ipamRequest)
            rollback.push("release the addresses") { try IPAMCall.delete(ipamRequest) }
            // The container interface is the third in the result: bridge, host veth, container.
            var result = try CNIResult.fromIPAM(ipamResult, cniVersion: request.cniVersion, interfaceIndex: 2)
            // Every host's bridge holds the same gateway address: each host routes its own
            // containers, and the VXLAN device only ever answers ARP for remote containers.
            try config.l3.configure(
                &result, interfaceIndex: 2, link: ports.container,
                setup: InterfaceSetup(namespace: containerNS, netlink: container, kernel: kernel), host: host
            ) { devices.bridge }
            veth.announce(ports, addresses: result.ips.map(\.address.address))
            let bridgeNow = try host.link(index: devices.bridge.index)
            let containerNow = try container.link(index: ports.container.index)
            result.describeInterfaces(
                request, hostSide: [bridgeNow, try host.link(index: ports.host.index)], container: containerNow)
            if config.ipMasq || config.isInternal {
                try NetworkRules(client: try kernel.nftables(), networkTag: attachment.networkTag).attach(
                    bridge: bridgeNow.name, masqueradeSubnets: config.ipMasq ? result.ips.map(\.address.network) : [],
                    isolated: PluginDefaults.overlayIsolation(ipMasq: config.ipMasq), isInternal: config.isInternal)
            }
            guard let containerMAC = containerNow.mac else {
                throw CNIError(.internalError, "\(request.ifName) has no MAC address")
            }
            // Remote endpoints first, so the new container reaches them as soon as ADD returns.
            _ = try context.storeCall { try context.sync(host).sync(lock: context.lock) }
            let endpoint = EndpointRecord(
                network: request.config.name, containerID: request.containerID, ifname: request.ifName,
                host: context.hostName, mac: containerMAC, ips: result.ips.map(\.address))
            try context.storeCall {
                try context.registry.publishHost(vtep: underlay.vtep)
                try context.registry.publish(endpoint)
            }
            return result
        }
    }

    func delete(_ request: CNIRequest) throws {
        let config = try request.config.decode(OverlayConfig.self)
        let attachment = Attachment(request)
        var failures = CNIErrorList()
        failures.attempt {
            let context = try OverlayContext(request, config)
            try context.storeCall {
                try context.registry.withdraw(containerID: request.containerID, ifname: request.ifName)
            }
        }
        failures.attempt { try VethSetup.deleteHostEnd(of: attachment, netlink: try kernel.hostNetlink()) }
        if !request.netns.isEmpty {
            do {
                let namespace = try kernel.openNamespace(request.netns)
                let container = try kernel.netlink(namespace)
                try ignoringMissing { try container.deleteLink(named: request.ifName) }
            } catch let error as NamespaceError where error.isNotFound {
                // The namespace went first: its links went with it.
            } catch {
                failures.record(error)
            }
        }
        var released: [IPAddress] = []
        failures.attempt { released = try IPAMCall.delete(request.withClusterIPAM(config)) }
        ConnectionTracking.forget(
            ConnectionTracking.containerAddresses(in: request.prevResult, ifName: request.ifName) + released,
            kernel: kernel, failures: &failures)
        try failures.throwIfAny("vxlan-overlay DEL incomplete")
    }

    func check(_ request: CNIRequest) throws {
        let config = try request.config.decode(OverlayConfig.self)
        try config.validate(request)
        try IPAMCall.check(request.withClusterIPAM(config))
        let context = try OverlayContext(request, config)
        let host = try kernel.hostNetlink()
        let vxlanName = OverlayDevices.vxlanName(vni: config.vniValue)
        guard let vxlan = try host.linkIfPresent(named: vxlanName) else {
            throw CNIError(.internalError, "VXLAN device \(vxlanName) is missing")
        }
        try NetworkDevices.verify(vxlan, network: request.config.name, config: config, underlay: nil)
        let bridgeName = OverlayDevices.bridgeName(vni: config.vniValue)
        guard let bridge = try host.linkIfPresent(named: bridgeName), bridge.kind == .bridge,
            vxlan.masterIndex == bridge.index
        else {
            throw CNIError(.internalError, "bridge \(bridgeName) is missing or \(vxlanName) is not its port")
        }
        let namespace = try kernel.openNamespace(request.netns)
        let container = try kernel.netlink(namespace)
        guard let link = try container.linkIfPresent(named: request.ifName), link.kind == .veth else {
            throw CNIError(.internalError, "interface \(request.ifName) is missing in \(request.netns)")
        }
        guard let hostEnd = try host.linkIfPresent(named: Attachment(request).hostVethName),
            hostEnd.masterIndex == bridge.index, hostEnd.linkIndex == link.index
        else {
            throw CNIError(.internalError, "the host end of \(request.ifName) is missing or not on \(bridgeName)")
        }
        let record = try context.storeCall {
            try context.registry.endpoint(containerID: request.containerID, ifname: request.ifName)
        }
        guard let record else {
            throw CNIError(.internalError, "endpoint record of \(request.containerID)/\(request.ifName) is missing")
        }
        guard record.mac == link.mac else {
            throw CNIError(.internalError, "endpoint record MAC \(record.mac) != \(link.mac?.description ?? "none")")
        }
        if let expected = request.prevResult {
            let missing = Set(expected.ips.map(\.address)).subtracting(record.ips)
            guard missing.isEmpty else {
                throw CNIError(.internalError, "endpoint record lacks \(missing.map(\.description).sorted())")
            }
        }
    }

    func garbageCollect(_ request: CNIRequest) throws {
        let config = try request.config.decode(OverlayConfig.self)
        let network = request.config.name
        let valid = Set(request.config.validAttachments ?? [])
        var failures = CNIErrorList()
        failures.attempt {
            let context = try OverlayContext(request, config)
            try context.storeCall {
                for endpoint in try context.registry.localEndpoints()
                where !valid.contains(
                    Attachment(network: network, containerID: endpoint.containerID, ifName: endpoint.ifname))
                {
                    try context.registry.withdraw(containerID: endpoint.containerID, ifname: endpoint.ifname)
                }
                if valid.isEmpty { try context.registry.withdrawHost() }
            }
        }
        failures.attempt {
            let host = try kernel.hostNetlink()
            for link in try host.links() {
                guard let alias = link.alias, let owner = Attachment.fromLinkAlias(alias), owner.network == network,
                    !valid.contains(owner)
                else { continue }
                try ignoringMissing { try host.deleteLink(index: link.index) }
            }
            if valid.isEmpty { try removeDevices(config, network: network, netlink: host) }
        }
        var released: [IPAddress] = []
        failures.attempt { released = try IPAMCall.garbageCollect(request.withClusterIPAM(config)) }
        ConnectionTracking.forget(released, kernel: kernel, failures: &failures)
        try failures.throwIfAny("vxlan-overlay GC incomplete")
    }

    /// With no attachment left, the bridge and VXLAN device go too (if no veth still uses them).
    private func removeDevices(_ config: OverlayConfig, network: String, netlink: RouteNetlink) throws {
        let bridgeName = OverlayDevices.bridgeName(vni: config.vniValue)
        guard let bridge = try netlink.linkIfPresent(named: bridgeName), bridge.kind == .bridge else { return }
        let ports = try netlink.links().filter { $0.masterIndex == bridge.index }
        guard ports.allSatisfy({ $0.kind == .vxlan }) else { return }
        for port in ports where port.alias == OverlayDevices.alias(network: network) {
            try ignoringMissing { try netlink.deleteLink(index: port.index) }
        }
        if config.ipMasq || config.isInternal {
            try NetworkRules(client: try kernel.nftables(), networkTag: Attachment.networkTag(network)).detach()
        }
        try ignoringMissing { try netlink.deleteLink(index: bridge.index) }
    }

    func status(_ request: CNIRequest) throws {
        let config = try request.config.decode(OverlayConfig.self)
        try config.validate(request)
        do {
            try config.store.open().checkHealth()
        } catch {
            throw CNIError(.pluginNotAvailable, "cluster store unavailable", details: error.description)
        }
        try IPAMCall.status(request.withClusterIPAM(config))
    }
}
