import CNI
import IPAddressing
import NetNS
import Netlink
import PluginSupport

/// Finding the master and creating the container's macvlan child of it.
enum MacvlanLink {
    /// The configured master, or the interface of the first default route (IPv4 first, then
    /// IPv6), looked up through `netlink` (the host's, or the container's with `linkInContainer`).
    static func findMaster(named name: String?, netlink: RouteNetlink, where place: String) throws -> Link {
        if let name {
            guard let master = try netlink.linkIfPresent(named: name) else {
                throw CNIError(.invalidNetworkConfig, "master interface \"\(name)\" not found \(place)")
            }
            return master
        }
        for family in [IPFamily.v4, .v6] {
            let defaults = try netlink.routes(family: family).filter { $0.isDefault && $0.outputIndex != nil }
            if let index = defaults.first?.outputIndex { return try netlink.link(index: index) }
        }
        throw CNIError(
            .invalidNetworkConfig, "no \"master\" configured and no default route \(place) to take its interface from")
    }

    /// How often a random temporary name may collide in the container before ADD gives up.
    static let nameAttempts = 5

    /// Creates the macvlan under a random temporary name directly in the container netns (the
    /// host never sees it, so no host interface name can collide with it), then renames it to
    /// `ifName` there. `creator` is the netlink session in the master's namespace, which the
    /// kernel resolves `master.index` in. Returns the link as the container sees it, still down;
    /// if the rename fails the link is deleted again.
    static func create(
        on master: Link, settings: MacvlanConfig.Settings, creator: RouteNetlink, container: RouteNetlink,
        containerNamespace: NetworkNamespace?, ifName: String
    ) throws -> Link {
        var temporaryName: String?
        for _ in 1...nameAttempts where temporaryName == nil {
            let candidate = "mvtmp" + hex32(UInt64.random(in: 0...UInt64.max))
            if try createUnlessNameTaken(
                candidate, on: master, settings: settings, creator: creator, containerNamespace: containerNamespace)
            {
                temporaryName = candidate
            }
        }
        guard let temporaryName else {
            throw CNIError(.tryAgainLater, "\(nameAttempts) random temporary interface names were all taken")
        }
        let created = try container.link(named: temporaryName)
        do {
            try container.rename(index: created.index, to: ifName)
            return try container.link(index: created.index)
        } catch {
            try? container.deleteLink(index: created.index)
            throw error
        }
    }

    /// False when the name is already taken in the container (the only collision possible).
    private static func createUnlessNameTaken(
        _ name: String, on master: Link, settings: MacvlanConfig.Settings, creator: RouteNetlink,
        containerNamespace: NetworkNamespace?
    ) throws(NetlinkError) -> Bool {
        do {
            try creator.createMacvlan(
                name: name, parentIndex: master.index, mode: settings.mode, mtu: settings.mtu, mac: settings.mac,
                namespace: containerNamespace.map { .namespace($0) },
                broadcastQueueLength: settings.broadcastQueueLength)
            return true
        } catch {
            if error.isExists { return false }
            throw error
        }
    }
}
