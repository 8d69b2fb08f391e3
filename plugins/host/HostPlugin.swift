import CNI
import IPAM
import IPAddressing
import NetNS
import Netlink
import PluginSupport

/// The `host` plugin. Without device keys it is host networking mode: the container shares the
/// host's netns and ADD reports the host's network. With `device`, `hwaddr`, `kernelpath`,
/// `pciBusID` or the `deviceID` capability it moves that host interface into the container
/// and, on DEL, back.
struct HostPlugin: CNIPlugin {
    /// Invoked as `host-device`: only device mode, as the reference plugin of that name has.
    var deviceOnly = false

    /// Where every kernel access goes (`PluginKernel.system` in production).
    var kernel: PluginKernel = .system

    var about: String {
        deviceOnly ? "Pier host-device plugin" : "Pier host plugin (host networking mode, host devices)"
    }
    /// Host networking mode is exactly "CNI_NETNS is the plugin's own netns". Device mode
    /// refuses that case itself, with skel's code 8, since moving a host device into the
    /// host is meaningless and DEL would then rename a host interface.
    var acceptsOwnNetworkNamespace: Bool { true }

    /// The mode the config asks for; as `host-device`, a config without device keys is an error.
    private func mode(_ request: CNIRequest) throws(CNIError) -> HostMode {
        let mode = try HostMode(request)
        if deviceOnly, case .hostNetworking = mode {
            throw CNIError(
                .invalidNetworkConfig,
                "specify either \"device\", \"hwaddr\", \"kernelpath\" or \"pciBusID\" (or the deviceID capability)")
        }
        return mode
    }

    func add(_ request: CNIRequest) throws -> CNIResult {
        switch try mode(request) {
        case .hostNetworking:
            guard request.config.ipam == nil else {
                throw CNIError(
                    .invalidNetworkConfig,
                    "\"ipam\" has no meaning in host networking mode: the container uses the host's own addresses")
            }
            try HostNetworking.requireHostNamespace(request.netns, kernel: kernel)
            var result = try HostNetworking.describeHost(cniVersion: request.cniVersion, kernel: kernel)
            if let dns = request.config.dns, !dns.isEmpty { result.dns = dns }
            return result
        case .device(let selectors):
            return try addDevice(selectors, request)
        }
    }

    private func addDevice(_ selectors: [DeviceSelector], _ request: CNIRequest) throws -> CNIResult {
        let containerNS = try kernel.openNamespace(request.netns)
        try rejectOwnNamespace(containerNS)
        let container = try kernel.netlink(containerNS)
        try requireNoContainerInterface(named: request.ifName, in: container)
        let move = try DeviceMove(kernel)
        let device = try DeviceSelection.resolve(selectors, netlink: move.host)
        // ADD leaves nothing behind when it fails: the device goes home, the lease is released.
        return try withRollback { rollback in
            try move.moveIn(device, as: request.ifName, into: containerNS)
            let link = try container.link(named: request.ifName)
            if let origin = DeviceOrigin(alias: link.alias) {
                rollback.push("return \(origin.name) to the host") {
                    try move.moveOut(link, origin: origin, from: container, holderNamespace: containerNS)
                }
            }
            var result = CNIResult(cniVersion: request.cniVersion)
            if request.config.ipam != nil {
                let ipamResult = try IPAMCall.add(request)
                rollback.push("release the addresses") { try IPAMCall.delete(request) }
                result = try CNIResult.fromIPAM(ipamResult, cniVersion: request.cniVersion, interfaceIndex: 0)
                let setup = InterfaceSetup(namespace: containerNS, netlink: container, kernel: kernel)
                try setup.prepare(ifName: request.ifName, families: Set(result.ips.map(\.family)), enableDAD: false)
                try setup.apply(result, interfaceIndex: 0, link: link, enableDAD: false)
            } else {
                try container.setLinkUp(index: link.index)
            }
            result.describeInterfaces(request, container: try container.link(index: link.index))
            return result
        }
    }

    func delete(_ request: CNIRequest) throws {
        // A config whose device keys no longer parse still moved a device in: look for it.
        if let selected = try? mode(request), case .hostNetworking = selected { return }
        var failures = CNIErrorList()
        var namespace: NetworkNamespace?
        failures.attempt { namespace = try openUnlessGone(request.netns) }
        if let namespace { try rejectOwnNamespace(namespace) }
        // IPAM always, even with no netns: the reference host-device leaks the lease there.
        var released: [IPAddress] = []
        if request.config.ipam != nil { failures.attempt { released = try IPAMCall.delete(request) } }
        ConnectionTracking.forget(
            ConnectionTracking.containerAddresses(in: request.prevResult, ifName: request.ifName) + released,
            kernel: kernel, failures: &failures)
        if namespace == nil {
            // Whatever the kernel gave back when the netns died gets its identity back (the
            // problems are logged only: DEL must not fail for a device that is already home).
            do {
                for problem in try DeviceMove(kernel).restoreStrays() { cniLog("host DEL: \(problem)") }
            } catch {
                cniLog("host DEL: \(error)")
            }
        }
        if let namespace {
            do {
                let container = try kernel.netlink(namespace)
                if let link = try container.linkIfPresent(named: request.ifName) {
                    if let origin = DeviceOrigin(alias: link.alias) {
                        try DeviceMove(kernel).moveOut(
                            link, origin: origin, from: container, holderNamespace: namespace)
                    } else {
                        cniLog("\(request.ifName) in \(request.netns) was not moved there by Pier; left alone")
                    }
                }
            } catch {
                failures.record(error)
            }
        }
        // No netns, or no device in it: a virtual device died with its netns, a physical one
        // went back to the root netns and was restored above. Nothing else is left to undo.
        try failures.throwIfAny("host DEL incomplete")
    }

    func check(_ request: CNIRequest) throws {
        switch try mode(request) {
        case .hostNetworking:
            try HostNetworking.requireHostNamespace(request.netns, kernel: kernel)
        case .device:
            try checkDevice(request)
        }
    }

    private func checkDevice(_ request: CNIRequest) throws {
        guard let expected = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "host CHECK needs prevResult")
        }
        if request.config.ipam != nil { try IPAMCall.check(request) }
        let namespace = try kernel.openNamespace(request.netns)
        try rejectOwnNamespace(namespace)
        let container = try kernel.netlink(namespace)
        guard let link = try container.linkIfPresent(named: request.ifName) else {
            throw CNIError(.internalError, "interface \(request.ifName) is missing in \(request.netns)")
        }
        guard DeviceOrigin(alias: link.alias) != nil else {
            throw CNIError(
                .internalError, "\(request.ifName) in \(request.netns) is not a host device Pier moved there")
        }
        try InterfaceSetup(namespace: namespace, netlink: container, kernel: kernel)
            .verify(link, against: expected, ifName: request.ifName, netns: request.netns)
    }

    /// Moved devices carry their own record (the alias): the only host-side leftovers are
    /// devices the kernel returned from deleted netns, restored here. Leases are the delegate's.
    func garbageCollect(_ request: CNIRequest) throws {
        var failures = CNIErrorList()
        if case .device = try mode(request) {
            for problem in try DeviceMove(kernel).restoreStrays() { failures.record(CNIError(.internalError, problem)) }
        }
        var released: [IPAddress] = []
        if request.config.ipam != nil { failures.attempt { released = try IPAMCall.garbageCollect(request) } }
        ConnectionTracking.forget(released, kernel: kernel, failures: &failures)
        try failures.throwIfAny("host GC incomplete")
    }

    /// The device is not looked for: once it is in a container it is off the host, and a
    /// failing STATUS would mark the whole network unusable for every other container.
    func status(_ request: CNIRequest) throws {
        if case .device = try mode(request), request.config.ipam != nil { try IPAMCall.status(request) }
    }

    /// Skel's code 8, which the runner skips for this plugin because host mode needs the case.
    private func rejectOwnNamespace(_ namespace: NetworkNamespace) throws {
        if namespace.isSame(as: try kernel.currentNamespace()) {
            throw CNIError(
                .invalidNetNS,
                "CNI_NETNS is the plugin's own network namespace: a host device cannot be moved into it"
                    + " (for host networking mode, remove the device keys)")
        }
    }

    private func openUnlessGone(_ path: String) throws -> NetworkNamespace? {
        guard !path.isEmpty else { return nil }
        do { return try kernel.openNamespace(path) } catch  where error.isNotFound { return nil }
    }
}
