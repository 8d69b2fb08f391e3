import NetNS
import NetlinkCore

/// Where nftables and conntrack requests go: NetlinkCore's transport, a NETLINK_NETFILTER
/// `NetlinkSocket` or the `RecordingTransport` fake in unit tests. Requests are whole
/// datagrams (a batch is one datagram); replies come back one datagram per `receive`.
public typealias NetfilterTransport = NetlinkTransport

extension NetlinkSession {
    /// A session on a fresh NETLINK_NETFILTER socket in `namespace` (the calling thread's own
    /// when nil). Sequence numbers start time-based, so replies from an unrelated earlier
    /// socket in a trace are easy to tell apart.
    static func netfilter(namespace: NetworkNamespace?) throws(FirewallError) -> NetlinkSession {
        do throws(NetlinkError) {
            return NetlinkSession(transport: try NetlinkSocket(.netfilter, namespace: namespace))
        } catch {
            throw FirewallError(error)
        }
    }
}
