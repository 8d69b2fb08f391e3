import CNI
import IPAddressing
import NetNS
import Netlink
import PluginSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The `loopback` plugin: brings `lo` up in the container's namespace, which gives it the
/// addresses the kernel assigns to a loopback that comes up (127.0.0.1/8, and ::1/128 unless
/// IPv6 is off there). Like the reference, it works on `lo` whatever `CNI_IFNAME` says
/// (containerd passes "lo", others "eth0" or anything).
struct LoopbackPlugin: CNIPlugin {
    /// Where every kernel access goes (`PluginKernel.system` in production).
    var kernel: PluginKernel = .system

    var about: String { "Pier loopback plugin" }

    static let interfaceName = "lo"

    func add(_ request: CNIRequest) throws -> CNIResult {
        let namespace = try kernel.openNamespace(request.netns)
        let netlink = try kernel.netlink(namespace)
        let loopback = try self.loopback(netlink)
        try netlink.setLinkUp(index: loopback.index)
        var addresses = try netlink.addresses(index: loopback.index)
        // The kernel adds 127.0.0.1/8 only when lo comes up without any IPv4 address, so a
        // loopback that was already up and lost it stays broken unless it is put back.
        if !addresses.contains(where: { $0.family == .v4 }), let standard = IPPrefix("127.0.0.1/8") {
            try ignoringExisting { try netlink.addAddress(standard, index: loopback.index) }
            addresses = try netlink.addresses(index: loopback.index)
        }
        if let stranger = addresses.first(where: { !$0.prefix.address.isLoopback }) {
            throw CNIError(
                .internalError, "loopback interface found with non-loopback address \(stranger.prefix.address)")
        }
        // A chained loopback passes the previous result on, as the reference does.
        if var previous = request.prevResult {
            previous.cniVersion = request.cniVersion
            return previous
        }
        var result = CNIResult(
            cniVersion: request.cniVersion,
            interfaces: [
                CNIResult.Interface(name: Self.interfaceName, mac: "00:00:00:00:00:00", sandbox: request.netns)
            ])
        for family in [IPFamily.v4, .v6] {
            if let first = addresses.first(where: { $0.family == family }) {
                result.ips.append(CNIResult.IPConfig(address: first.prefix, interface: 0))
            }
        }
        return result
    }

    /// Sets lo down, as the reference does. Nothing to do without a namespace, or when it is
    /// gone (or no longer a namespace): lo went with it.
    func delete(_ request: CNIRequest) throws {
        guard !request.netns.isEmpty else { return }
        let namespace: NetworkNamespace
        do {
            namespace = try kernel.openNamespace(request.netns)
        } catch {
            guard !error.isNotFound && error.errno != EINVAL else { return }
            throw error
        }
        let netlink = try kernel.netlink(namespace)
        try ignoringMissing {
            try netlink.setLinkDown(index: try self.loopback(netlink).index)
        }
    }

    func check(_ request: CNIRequest) throws {
        let namespace = try kernel.openNamespace(request.netns)
        let loopback = try self.loopback(try kernel.netlink(namespace))
        guard loopback.link.isUp else { throw CNIError(.internalError, "loopback interface is down") }
    }

    /// `lo`, checked to really be the loopback device.
    private func loopback(_ netlink: RouteNetlink) throws -> TunableLink {
        let link = try netlink.tunableLink(named: Self.interfaceName)
        guard link.isLoopback else {
            throw CNIError(.internalError, "\(Self.interfaceName) is not a loopback interface")
        }
        return link
    }
}
