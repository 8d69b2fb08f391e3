import NetNS
import NetlinkCore
import Synchronization

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
            let socket = try NetlinkSocket(.netfilter, namespace: namespace)
            socket.releasesDetached = NetfilterRelease.removalsCommitted.load(ordering: .relaxed)
            return NetlinkSession(transport: socket)
        } catch {
            throw FirewallError(error)
        }
    }
}

/// nf_tables frees the objects a transaction removed after an RCU grace period (5–20 ms on a busy
/// VM), and the release of *any* netfilter socket waits for the frees still pending: the socket that
/// committed the removal, and a conntrack socket opened after it alike. Once this process committed a
/// removal, its netfilter sockets are released by a detached grandchild (`NetlinkSocket.releasesDetached`),
/// so a DEL returns when its changes are committed rather than when the kernel has freed them.
public enum NetfilterRelease {
    /// Asked for by CNI plugins (`PluginKernel.system`), whose DEL a runtime waits for; a long-lived
    /// process (`pier agent`, services) gains nothing from it and would only fork a grandchild per socket.
    public static func detachAfterRemovals() { enabled.store(true, ordering: .relaxed) }

    static let enabled = Atomic<Bool>(false)
    static let removalsCommitted = Atomic<Bool>(false)

    /// Called before committing a batch that removes objects on `transport`.
    static func noteRemoval(on transport: NetfilterTransport) {
        guard enabled.load(ordering: .relaxed) else { return }
        removalsCommitted.store(true, ordering: .relaxed)
        (transport as? NetlinkSocket)?.releasesDetached = true
    }
}
