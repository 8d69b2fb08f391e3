import CNI
import IPAM
import IPAddressing
import NetNS
import Netlink
import PluginSupport

/// The `macvlan` plugin: a macvlan child of a host interface (the "master") becomes the
/// container's interface, on the master's L2 segment with its own MAC; addresses come from the
/// IPAM delegate, or none at all (L2 only).
struct MacvlanPlugin: CNIPlugin {
    /// Where every kernel access goes (`PluginKernel.system` in production).
    var kernel: PluginKernel = .system

    var about: String { "Pier macvlan plugin" }

    func add(_ request: CNIRequest) throws -> CNIResult {
        let config = try request.config.decode(MacvlanConfig.self)
        var settings = try config.validate()
        if let runtimeMAC = try requestedMAC(request) { settings.mac = runtimeMAC }

        let containerNS = try kernel.openNamespace(request.netns)
        let container = try kernel.netlink(containerNS)
        try requireNoContainerInterface(named: request.ifName, in: container)
        let masterNetlink = config.linkInContainer ? container : try kernel.hostNetlink()
        let master = try MacvlanLink.findMaster(
            named: config.master, netlink: masterNetlink,
            where: config.linkInContainer ? "in the container" : "on the host")
        if let mtu = settings.mtu, let masterMTU = master.mtu, mtu > masterMTU {
            throw CNIError(
                .invalidNetworkConfig,
                "invalid MTU \(mtu): must be at most the MTU of master \(master.name) (\(masterMTU))")
        }

        // The runtime will DEL after a failed ADD, but ADD still leaves nothing behind itself.
        return try withRollback { rollback in
            let link = try MacvlanLink.create(
                on: master, settings: settings, creator: masterNetlink, container: container,
                containerNamespace: config.linkInContainer ? nil : containerNS, ifName: request.ifName)
            rollback.push("delete \(request.ifName)") { try container.deleteLink(index: link.index) }
            let setup = InterfaceSetup(namespace: containerNS, netlink: container, kernel: kernel)
            var result = CNIResult(cniVersion: request.cniVersion)
            if request.config.ipam != nil {
                let ipamResult = try IPAMCall.add(request)
                rollback.push("release the addresses") { try IPAMCall.delete(request) }
                result = try CNIResult.fromIPAM(ipamResult, cniVersion: request.cniVersion, interfaceIndex: 0)
                try announceAddresses(setup, ifName: request.ifName, families: Set(result.ips.map(\.family)))
                try setup.apply(result, interfaceIndex: 0, link: link, enableDAD: false)
            } else {
                try announceAddresses(setup, ifName: request.ifName, families: [])
                try container.setLinkUp(index: link.index)
            }
            result.describeInterfaces(request, container: try container.link(index: link.index))
            return result
        }
    }

    /// Neighbours on the segment cache the MAC of whoever had these addresses before, and a
    /// macvlan gets a fresh MAC: announce on link-up (gratuitous ARP / unsolicited NA). Both
    /// must be set before the link comes up; IPv6 may be off in the container, so its knob is
    /// best effort when no IPv6 address depends on it.
    private func announceAddresses(_ setup: InterfaceSetup, ifName: String, families: Set<IPFamily>) throws {
        try setup.prepare(ifName: ifName, families: families, enableDAD: false)
        if !families.contains(.v6) {
            _ = try? setup.kernel.sysctls(setup.namespace) { sysctl in
                try sysctl.write("net/ipv6/conf/\(ifName)/ndisc_notify", "1")
            }
        }
    }

    func delete(_ request: CNIRequest) throws {
        var failures = CNIErrorList()
        // IPAM first, as the reference does: the lease must go even if the netns is unusable.
        var released: [IPAddress] = []
        if request.config.ipam != nil { failures.attempt { released = try IPAMCall.delete(request) } }
        ConnectionTracking.forget(
            ConnectionTracking.containerAddresses(in: request.prevResult, ifName: request.ifName) + released,
            kernel: kernel, failures: &failures)
        if !request.netns.isEmpty {
            do {
                let namespace = try kernel.openNamespace(request.netns)
                let container = try kernel.netlink(namespace)
                // Only our kind of link: a same-named interface of another kind is not ours.
                if let link = try container.linkIfPresent(named: request.ifName), link.kind == .macvlan {
                    try ignoringMissing { try container.deleteLink(index: link.index) }
                }
            } catch let error as NamespaceError where error.isNotFound {
                // The netns went first and took the macvlan with it.
            } catch {
                failures.record(error)
            }
        }
        try failures.throwIfAny("macvlan DEL incomplete")
    }

    func check(_ request: CNIRequest) throws {
        let config = try request.config.decode(MacvlanConfig.self)
        let settings = try config.validate()
        guard let expected = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "macvlan CHECK needs prevResult")
        }
        if request.config.ipam != nil { try IPAMCall.check(request) }

        let namespace = try kernel.openNamespace(request.netns)
        let container = try kernel.netlink(namespace)
        let masterNetlink = config.linkInContainer ? container : try kernel.hostNetlink()
        let master = try MacvlanLink.findMaster(
            named: config.master, netlink: masterNetlink,
            where: config.linkInContainer ? "in the container" : "on the host")
        guard let link = try container.linkIfPresent(named: request.ifName) else {
            throw CNIError(.internalError, "interface \(request.ifName) is missing in \(request.netns)")
        }
        guard link.kind == .macvlan else {
            throw CNIError(.internalError, "\(request.ifName) is a \(link.kind?.rawValue ?? "device"), not a macvlan")
        }
        guard link.macvlanMode == settings.mode else {
            throw CNIError(
                .internalError,
                "\(request.ifName) is not in macvlan mode \(config.mode)"
                    + " (it is in \(link.macvlanMode.map { "\($0)" } ?? "an unknown mode"))")
        }
        // IFLA_LINK is the parent's index in the parent's own namespace.
        guard link.linkIndex == master.index else {
            throw CNIError(.internalError, "\(request.ifName) is not a child of master \(master.name)")
        }
        try InterfaceSetup(namespace: namespace, netlink: container, kernel: kernel)
            .verify(link, against: expected, ifName: request.ifName, netns: request.netns)
    }

    /// The plugin keeps no state of its own: a container's macvlan dies with its netns. Only
    /// the IPAM delegate has leases to collect.
    func garbageCollect(_ request: CNIRequest) throws {
        var failures = CNIErrorList()
        var released: [IPAddress] = []
        if request.config.ipam != nil { failures.attempt { released = try IPAMCall.garbageCollect(request) } }
        ConnectionTracking.forget(released, kernel: kernel, failures: &failures)
        try failures.throwIfAny("macvlan GC incomplete")
    }

    func status(_ request: CNIRequest) throws {
        let config = try request.config.decode(MacvlanConfig.self)
        _ = try config.validate()
        // With linkInContainer the master is in a container netns that STATUS is not given.
        if !config.linkInContainer {
            do {
                _ = try MacvlanLink.findMaster(
                    named: config.master, netlink: try kernel.hostNetlink(), where: "on the host")
            } catch let error as CNIError where error.code == .invalidNetworkConfig {
                throw CNIError(.pluginNotAvailable, error.msg)
            }
        }
        if request.config.ipam != nil { try IPAMCall.status(request) }
    }
}
