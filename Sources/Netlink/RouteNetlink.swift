import NetNS

/// A synchronous rtnetlink session on one socket.
///
/// The socket belongs to the network namespace it was opened in, so a session opened with
/// `init(namespace:)` keeps working there without any further `setns`. Not thread-safe: a
/// plugin uses it from one thread, like the rest of its namespace work.
///
/// Framing, sequence and port checks, ACKs, dumps and errors are NetlinkCore's
/// `NetlinkSession`, shared with the nf_tables and conntrack clients.
public final class RouteNetlink {
    private let session: NetlinkSession

    public var transport: any NetlinkTransport { session.transport }

    /// How often a dump is restarted when the kernel flags it inconsistent.
    public static let dumpAttempts = NetlinkSession.dumpAttempts

    /// Uses `transport` as is; `firstSequence` is injectable so tests get stable bytes.
    public init(transport: any NetlinkTransport, firstSequence: UInt32? = nil) {
        session = NetlinkSession(transport: transport, firstSequence: firstSequence)
    }

    /// Opens a socket in the calling thread's network namespace.
    public convenience init() throws(NetlinkError) {
        self.init(transport: try NetlinkSocket(.route))
    }

    /// Opens a socket inside `namespace`; it stays bound there after the thread switches back.
    public convenience init(namespace: NetworkNamespace) throws(NetlinkError) {
        self.init(transport: try NetlinkSocket(.route, namespace: namespace))
    }

    /// Sends a request with NLM_F_ACK and waits for the kernel's answer: the data messages
    /// it returned (for gets) once the ACK arrives, or the error it reported.
    @discardableResult
    func execute(_ request: MessageBuilder) throws(NetlinkError) -> [NetlinkMessage] {
        try session.execute(request)
    }

    /// Runs a dump (NLM_F_DUMP) to its NLMSG_DONE and returns every data message; restarts it
    /// when the kernel flags it interrupted, since the result may then be inconsistent.
    func dump(_ makeRequest: () -> MessageBuilder) throws(NetlinkError) -> [NetlinkMessage] {
        try session.dump(makeRequest)
    }
}
