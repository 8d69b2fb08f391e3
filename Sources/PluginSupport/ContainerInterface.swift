import CNI
import Netlink

/// Refuses an ADD whose interface name is taken in the container (code 4, like a bad
/// CNI_IFNAME): another attachment's interface must never be reused or replaced.
public func requireNoContainerInterface(named ifName: String, in container: RouteNetlink) throws {
    if try container.linkIfPresent(named: ifName) != nil {
        throw CNIError(.invalidEnvironmentVariables, "container already has an interface named \(ifName)")
    }
}

extension CNIResult {
    /// The end of every interface plugin's ADD: the config's `dns`, when it has one, over the
    /// IPAM delegate's, and `interfaces` as the kernel has them now (a MAC can change when a
    /// port is enslaved): the host-side links in order, then the container's interface in
    /// `request.netns`. Addresses keep pointing at the container interface by its position.
    public mutating func describeInterfaces(_ request: CNIRequest, hostSide: [Link] = [], container: Link) {
        if let dns = request.config.dns, !dns.isEmpty { self.dns = dns }
        interfaces = hostSide.map { CNIResult.Interface(name: $0.name, mac: $0.mac?.description) }
        interfaces.append(
            CNIResult.Interface(
                name: container.name, mac: container.mac?.description, mtu: container.mtu.map { Int($0) },
                sandbox: request.netns))
    }
}
