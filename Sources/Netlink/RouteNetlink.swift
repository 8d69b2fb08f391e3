import CPierShim
import NetNS

#if canImport(Glibc)
    import Glibc
#endif

/// A synchronous rtnetlink session on one socket.
///
/// The socket belongs to the network namespace it was opened in, so a session opened with
/// `init(namespace:)` keeps working there without any further `setns`. Not thread-safe: a
/// plugin uses it from one thread, like the rest of its namespace work.
public final class RouteNetlink {
    public let transport: any NetlinkTransport
    private var nextSequence: UInt32

    /// How often a dump is restarted when the kernel flags it inconsistent (the reference
    /// plugins' `netlinksafe` uses the same bound).
    public static let dumpAttempts = 5

    /// Uses `transport` as is; `firstSequence` is injectable so tests get stable bytes.
    public init(transport: any NetlinkTransport, firstSequence: UInt32? = nil) {
        self.transport = transport
        // Time-based like iproute2's, so requests of different runs are told apart in traces.
        self.nextSequence = firstSequence ?? UInt32(truncatingIfNeeded: time(nil))
    }

    /// Opens a socket in the calling thread's network namespace.
    public convenience init() throws(NetlinkError) {
        self.init(transport: try MnlSocketTransport())
    }

    /// Opens a socket inside `namespace`; it stays bound there after the thread switches back.
    public convenience init(namespace: NetworkNamespace) throws(NetlinkError) {
        let transport: MnlSocketTransport
        do {
            transport = try namespace.perform { () throws(NetlinkError) -> MnlSocketTransport in
                try MnlSocketTransport()
            }
        } catch let error as NetlinkError {
            throw error
        } catch let error as NamespaceError {
            throw NetlinkError(
                .namespace, operation: "open netlink socket in \(namespace.path)", errno: error.errno,
                detail: error.description)
        } catch {
            throw NetlinkError(
                .namespace, operation: "open netlink socket in \(namespace.path)", errno: EINVAL,
                detail: "\(error)")
        }
        self.init(transport: transport)
    }

    private func takeSequence() -> UInt32 {
        let sequence = nextSequence
        nextSequence &+= 1
        return sequence
    }

    /// Sends a request with NLM_F_ACK and waits for the kernel's answer: the data messages
    /// it returned (for gets) once the ACK arrives, or the error it reported.
    @discardableResult
    func execute(_ request: MessageBuilder) throws(NetlinkError) -> [NetlinkMessage] {
        let sequence = takeSequence()
        try transport.send(try request.bytes(sequence: sequence, extraFlags: NLM_F_ACK))
        var data: [NetlinkMessage] = []
        while true {
            for message in try receiveMessages(sequence: sequence, operation: request.operation) {
                switch Int32(message.type) {
                case NLMSG_NOOP:
                    continue
                case NLMSG_ERROR:
                    try checkError(message, operation: request.operation)
                    return data
                case NLMSG_DONE:
                    return data
                default:
                    data.append(message)
                }
            }
        }
    }

    /// Runs a dump (NLM_F_DUMP) to its NLMSG_DONE and returns every data message; restarts it
    /// when the kernel flags it interrupted, since the result may then be inconsistent.
    ///
    /// Dumps carry no NLM_F_ACK: they always end with NLMSG_DONE, which carries the status.
    func dump(_ makeRequest: () -> MessageBuilder) throws(NetlinkError) -> [NetlinkMessage] {
        var operation = ""
        for _ in 0..<Self.dumpAttempts {
            let request = makeRequest()
            operation = request.operation
            let sequence = takeSequence()
            try transport.send(try request.bytes(sequence: sequence, extraFlags: NLM_F_DUMP))
            var data: [NetlinkMessage] = []
            var interrupted = false
            var finished = false
            while !finished {
                for message in try receiveMessages(sequence: sequence, operation: operation) {
                    if Int32(message.flags) & NLM_F_DUMP_INTR != 0 { interrupted = true }
                    switch Int32(message.type) {
                    case NLMSG_NOOP:
                        continue
                    case NLMSG_ERROR:
                        try checkError(message, operation: operation)
                        finished = true
                    case NLMSG_DONE:
                        let status = readI32(message.payload, 0)
                        if status < 0 {
                            throw NetlinkError(.kernel, operation: operation, errno: -status)
                        }
                        finished = true
                    default:
                        data.append(message)
                    }
                    if finished { break }
                }
            }
            if !interrupted { return data }
        }
        throw NetlinkError(
            .dumpInterrupted, operation: operation, errno: EINTR,
            detail: "the kernel reported the dump inconsistent \(Self.dumpAttempts) times in a row")
    }

    /// Receives one datagram and checks that every message in it answers this request.
    private func receiveMessages(sequence: UInt32, operation: String) throws(NetlinkError) -> [NetlinkMessage] {
        let datagram = try transport.receive()
        guard let messages = NetlinkMessage.split(datagram) else {
            throw NetlinkError(
                .protocolViolation, operation: operation, errno: EPROTO, detail: "malformed reply")
        }
        for message in messages {
            guard message.sequence == sequence else {
                throw NetlinkError(
                    .protocolViolation, operation: operation, errno: EPROTO,
                    detail: "reply has sequence number \(message.sequence), expected \(sequence)")
            }
            guard message.portID == transport.portID else {
                throw NetlinkError(
                    .protocolViolation, operation: operation, errno: EPROTO,
                    detail: "reply is addressed to port \(message.portID), ours is \(transport.portID)")
            }
        }
        return messages
    }

    /// NLMSG_ERROR: 0 is the ACK, a negative value is -errno. With extended ACK the kernel
    /// appends TLVs after the (possibly capped) echoed request; NLMSGERR_ATTR_MSG is its reason.
    private func checkError(_ message: NetlinkMessage, operation: String) throws(NetlinkError) {
        guard message.payload.count >= 4 else {
            throw NetlinkError(
                .protocolViolation, operation: operation, errno: EPROTO, detail: "short error message")
        }
        let code = readI32(message.payload, 0)
        if code == 0 { return }
        var detail: String?
        if Int32(message.flags) & NLM_F_ACK_TLVS != 0 {
            let echoedLength =
                Int32(message.flags) & NLM_F_CAPPED != 0
                ? NetlinkMessage.headerLength : Int(readU32(message.payload, 4))
            let tlvOffset = 4 + align(echoedLength)
            if tlvOffset <= message.payload.count {
                detail = Attributes(message.payload, from: tlvOffset).string(UInt16(NLMSGERR_ATTR_MSG.rawValue))
            }
        }
        throw NetlinkError(.kernel, operation: operation, errno: code == Int32.min ? EIO : -code, detail: detail)
    }
}
