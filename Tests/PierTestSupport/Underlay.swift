import Foundation

/// Test hosts on one underlay "switch": a test host holding a bridge, one veth port per host.
/// Host `i` gets `<prefix>.<i+1>/24` on `eth0` and a default route via the switch's
/// `<prefix>.254`, where an etcd can listen. The multi-host suites (overlay, services) build
/// their clusters on it; `destroy()` removes the switch and every host.
public final class Underlay: @unchecked Sendable {
    public let switchHost: TestHost
    public private(set) var hosts: [TestHost] = []
    /// `10.<second>.<third>`: the first three octets of every underlay address.
    public let prefix: String

    public init(hosts count: Int, prefix: String) throws {
        self.prefix = prefix
        switchHost = try TestHost()
        do {
            try switchHost.mustRun(["ip", "link", "add", "sw0", "type", "bridge"])
            try switchHost.mustRun(["ip", "addr", "add", "\(prefix).254/24", "dev", "sw0"])
            try switchHost.mustRun(["ip", "link", "set", "sw0", "up"])
            for index in 0..<count {
                let host = try TestHost()
                hosts.append(host)
                try connect(host, "eth0", to: switchHost, "p\(index)")
                try switchHost.mustRun(["ip", "link", "set", "p\(index)", "master", "sw0"])
                try host.mustRun(["ip", "addr", "add", "\(address(index))/24", "dev", "eth0"])
                try host.mustRun(["ip", "route", "add", "default", "via", "\(prefix).254"])
            }
        } catch {
            destroy()
            throw error
        }
    }

    /// Host `index`'s underlay address (its VTEP on an overlay).
    public func address(_ index: Int) -> String { "\(prefix).\(index + 1)" }

    /// The switch's address.
    public var switchAddress: String { "\(prefix).254" }

    public func destroy() {
        for host in hosts { host.destroy() }
        switchHost.destroy()
    }
}
