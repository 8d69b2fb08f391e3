import CNI
import NetNS
import Netlink
import PluginSupport

/// Moves a host device into a container and back. Every move goes through a private scratch
/// netns, where the device is renamed out of sight: neither the host nor the container ever
/// holds it under a name that could collide, and udev or NetworkManager never see a
/// half-renamed device on the host.
struct DeviceMove {
    let kernel: PluginKernel
    let host: RouteNetlink
    let hostNamespace: NetworkNamespace

    init(_ kernel: PluginKernel) throws {
        self.kernel = kernel
        host = try kernel.hostNetlink()
        hostNamespace = try kernel.currentNamespace()
    }

    /// Moves `device` into the container as `ifName`, with its origin in its alias. It arrives
    /// down (a netns move closes a device). On failure it is back on the host as it was.
    func moveIn(_ device: Link, as ifName: String, into container: NetworkNamespace) throws {
        let origin = DeviceOrigin(
            name: device.name, mtu: device.mtu ?? 0, wasUp: device.isUp, alias: device.alias ?? "")
        if !origin.alias.isEmpty && DeviceOrigin(alias: origin.encoded)?.alias != origin.alias {
            cniLog("\(device.name)'s alias is too long to keep beside its origin; it will not be restored")
        }
        let scratch = try kernel.scratchNamespace()
        let staging = try kernel.netlink(scratch)
        try host.moveLink(index: device.index, to: .namespace(scratch))
        do {
            let staged = try staging.link(named: device.name)
            try staging.rename(index: staged.index, to: ifName)
            try staging.setAlias(index: staged.index, origin.encoded)
            try staging.moveLink(index: staged.index, to: .namespace(container))
        } catch {
            // Left in the scratch netns it would vanish with this process (a virtual device is
            // destroyed, a physical one lands in the root netns, unconfigured).
            do { try finishReturn(from: staging, origin: origin) } catch let undoError {
                cniLog("could not return \(device.name) to the host after a failed move: \(undoError)")
            }
            throw error
        }
    }

    /// Puts a moved device back on the host under its original name, MTU, alias and up/down
    /// state. When the host has meanwhile given that name to another interface, nothing moves
    /// and the error says so: the device stays in the container, where a later DEL can retry.
    func moveOut(_ link: Link, origin: DeviceOrigin, from holder: RouteNetlink, holderNamespace: NetworkNamespace)
        throws
    {
        if let clash = try host.linkIfPresent(named: origin.name) {
            throw CNIError(
                .internalError,
                "cannot return \(link.name) to the host as \(origin.name): the host has another interface of that"
                    + " name (index \(clash.index)); it stays in the container until that name is free")
        }
        let scratch = try kernel.scratchNamespace()
        let staging = try kernel.netlink(scratch)
        try holder.moveLink(index: link.index, to: .namespace(scratch))
        do {
            try finishReturn(from: staging, origin: origin)
        } catch {
            // Back where it came from, under the name it had there, so nothing is lost.
            if let staged = try? stagedDevice(in: staging) {
                try? staging.rename(index: staged.index, to: link.name)
                try? staging.moveLink(index: staged.index, to: .namespace(holderNamespace))
            }
            throw error
        }
    }

    /// Devices on the host that still carry an origin alias came back without Pier: their
    /// container netns was destroyed and the kernel returned them (physical devices go to the
    /// root netns, down, under their container-side name, or `dev<N>` if that was taken). They
    /// get their original name, MTU, alias and state back, whichever attachment they belonged
    /// to. Best effort: a name still taken on the host is left for a later DEL or GC.
    func restoreStrays() -> [String] {
        var problems: [String] = []
        guard let links = try? host.links() else { return ["cannot list host interfaces"] }
        for link in links {
            guard let origin = DeviceOrigin(alias: link.alias) else { continue }
            do {
                if link.name != origin.name {
                    if try host.linkIfPresent(named: origin.name) != nil {
                        problems.append("\(link.name) should be renamed \(origin.name), which is taken")
                        continue
                    }
                    if link.isUp { try host.setLinkDown(index: link.index) }
                    try host.rename(index: link.index, to: origin.name)
                }
                if origin.mtu > 0 && link.mtu != origin.mtu { try host.setMTU(index: link.index, origin.mtu) }
                try host.setAlias(index: link.index, origin.alias)
                if origin.wasUp { try host.setLinkUp(index: link.index) }
                cniLog("restored \(origin.name), which came back from a deleted container netns as \(link.name)")
            } catch {
                problems.append("restoring \(origin.name): \(error)")
            }
        }
        return problems
    }

    /// From the scratch netns: original name and MTU there, then to the host, where the old
    /// alias and the up state come back.
    private func finishReturn(from staging: RouteNetlink, origin: DeviceOrigin) throws {
        let staged = try stagedDevice(in: staging)
        if staged.name != origin.name { try staging.rename(index: staged.index, to: origin.name) }
        if origin.mtu > 0 && staged.mtu != origin.mtu { try staging.setMTU(index: staged.index, origin.mtu) }
        try staging.moveLink(index: staged.index, to: .namespace(hostNamespace))
        let returned = try host.link(named: origin.name)
        try host.setAlias(index: returned.index, origin.alias)
        if origin.wasUp { try host.setLinkUp(index: returned.index) }
    }

    /// The device in a scratch netns: the only interface there besides loopback.
    private func stagedDevice(in staging: RouteNetlink) throws -> Link {
        let loopbackFlag: UInt32 = 0x8  // IFF_LOOPBACK
        guard let staged = try staging.links().first(where: { $0.flags & loopbackFlag == 0 }) else {
            throw CNIError(.internalError, "the device being moved disappeared from its scratch network namespace")
        }
        return staged
    }
}
