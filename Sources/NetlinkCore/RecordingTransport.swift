import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

/// The one fake kernel for unit tests of every netlink protocol: records every datagram sent
/// and answers from a script, so tests check exact request bytes and the handling of ACKs,
/// errors and dumps without root.
///
/// Answers, in order of precedence, for each datagram sent:
/// - `responder`, when set and it returns replies, plays the kernel (gets, dumps, errors);
/// - otherwise, with `autoAcknowledge`, every message asking for NLM_F_ACK gets an ACK (or
///   the errno `failures` holds for its sequence number), and a dump gets an empty NLMSG_DONE,
///   as a kernel with nothing in it would answer.
/// Replies queue up in `replies` behind any scripted in advance; `receive` hands them out
/// one datagram at a time and, when none is left, fails as a real socket's receive timeout.
///
/// Wrapped around a real transport (`init(forwardingTo:)`), it only records: requests go to
/// the kernel and replies come from it.
public final class RecordingTransport: NetlinkTransport {
    public let portID: UInt32
    /// Every datagram sent, in order (tests may clear it between steps).
    public var sent: [[UInt8]] = []
    /// Datagrams still to be received, in order.
    public var replies: [[UInt8]]
    /// Plays the kernel for one sent datagram; nil (or no responder) falls back to the
    /// automatic answers.
    public var responder: (([UInt8]) -> [[UInt8]]?)?
    public var autoAcknowledge = true
    /// Per sequence number, the errno to answer with instead of an ACK.
    public var failures: [UInt32: Int32] = [:]
    private let kernel: (any NetlinkTransport)?

    public init(portID: UInt32 = 4242, replies: [[UInt8]] = []) {
        self.portID = portID
        self.replies = replies
        self.kernel = nil
    }

    /// Records what is sent through `kernel`, which does the real work.
    public init(forwardingTo kernel: any NetlinkTransport) {
        self.portID = kernel.portID
        self.replies = []
        self.kernel = kernel
    }

    public func send(_ datagram: [UInt8]) throws(NetlinkError) {
        sent.append(datagram)
        if let kernel { return try kernel.send(datagram) }
        if let scripted = responder?(datagram) {
            replies += scripted
            return
        }
        guard autoAcknowledge, let messages = NetlinkMessage.split(datagram) else { return }
        for message in messages {
            if let code = failures[message.sequence] {
                replies.append(Self.errorReply(sequence: message.sequence, errno: code, portID: portID))
            } else if message.flags & NetlinkHeader.ack != 0 {
                replies.append(Self.errorReply(sequence: message.sequence, errno: 0, portID: portID))
            } else if message.flags & NetlinkHeader.dump == NetlinkHeader.dump {
                replies.append(Self.done(sequence: message.sequence, portID: portID))
            }
        }
    }

    public func receive() throws(NetlinkError) -> [UInt8] {
        if let kernel { return try kernel.receive() }
        guard !replies.isEmpty else {
            throw NetlinkError(
                .socket, operation: "receive netlink reply", errno: ETIMEDOUT, detail: "no scripted reply left")
        }
        return replies.removeFirst()
    }

    // MARK: - Building replies

    /// The sequence number of the first message in a datagram (BATCH_BEGIN for a batch).
    public static func firstSequence(of datagram: [UInt8]) -> UInt32 {
        readU32(datagram, 8)
    }

    /// Sequence numbers of every message in a datagram, in order.
    public static func sequences(of datagram: [UInt8]) -> [UInt32] {
        NetlinkMessage.sequences(of: datagram)
    }

    /// One reply message: nlmsghdr and payload, padded.
    public static func message(
        type: UInt16, flags: UInt16 = 0, sequence: UInt32, portID: UInt32, payload: [UInt8]
    ) -> [UInt8] {
        let length = NetlinkMessage.headerLength + payload.count
        var bytes = hostBytes(UInt32(length)) + hostBytes(type) + hostBytes(flags)
        bytes += hostBytes(sequence) + hostBytes(portID) + payload
        return bytes + [UInt8](repeating: 0, count: align(length) - length)
    }

    /// NLMSG_ERROR (errno 0 is an ACK) as the kernel sends it with NETLINK_CAP_ACK: the status,
    /// the request's header, and the extended-ACK message when given.
    public static func errorReply(
        sequence: UInt32, errno code: Int32, portID: UInt32, request: [UInt8]? = nil, extendedAckMessage: String? = nil
    ) -> [UInt8] {
        var flags = NetlinkHeader.capped
        var echoed = [UInt8](repeating: 0, count: NetlinkMessage.headerLength)
        if let request, request.count >= NetlinkMessage.headerLength {
            echoed = Array(request[0..<NetlinkMessage.headerLength])
        }
        var tlvs: [UInt8] = []
        if let extendedAckMessage {
            flags |= NetlinkHeader.ackTLVs
            let text = Array(extendedAckMessage.utf8) + [0]
            tlvs = hostBytes(UInt16(4 + text.count)) + hostBytes(UInt16(NLMSGERR_ATTR_MSG.rawValue)) + text
            tlvs += [UInt8](repeating: 0, count: align(tlvs.count) - tlvs.count)
        }
        return message(
            type: NetlinkHeader.error, flags: flags, sequence: sequence, portID: portID,
            payload: hostBytes(-code) + echoed + tlvs)
    }

    /// NLMSG_DONE with `status` (0, or -errno for a failed dump); NLM_F_MULTI as dumps carry.
    public static func done(
        sequence: UInt32, portID: UInt32, status: Int32 = 0, flags: UInt16 = 0x2
    ) -> [UInt8] {
        message(type: NetlinkHeader.done, flags: flags, sequence: sequence, portID: portID, payload: hostBytes(status))
    }
}
