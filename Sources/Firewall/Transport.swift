import NetNS
import NetlinkCore

/// Where nftables and conntrack requests go: NetlinkCore's transport, a NETLINK_NETFILTER
/// `NetlinkSocket` or the `RecordingTransport` fake in unit tests. Requests are whole
/// datagrams (a batch is one datagram); replies come back one datagram per `receive`.
public typealias NetfilterTransport = NetlinkTransport

extension NetlinkSocket {
    /// A NETLINK_NETFILTER socket in `namespace` (the calling thread's own when nil).
    static func netfilter(namespace: NetworkNamespace?) throws(FirewallError) -> NetlinkSocket {
        do throws(NetlinkError) {
            return try NetlinkSocket(.netfilter, namespace: namespace)
        } catch {
            throw FirewallError(error)
        }
    }
}
