import CPierShim

#if canImport(Glibc)
    import Glibc
#endif

/// A synchronous request/reply session on one netlink transport, for any protocol: it owns
/// the sequence numbers and checks every reply (framing, sequence number, port id) before
/// anything above looks at it, and turns NLMSG_ERROR / NLMSG_DONE into results or errors.
///
/// Not thread-safe: a plugin uses it from one thread, like the rest of its namespace work.
package final class NetlinkSession {
    package let transport: any NetlinkTransport
    /// The next sequence number to hand out; batch encoders take a run of them.
    package var nextSequence: UInt32

    /// How often a dump is restarted when the kernel flags it inconsistent (the reference
    /// plugins' `netlinksafe` uses the same bound).
    package static let dumpAttempts = 5

    /// `firstSequence` is injectable so tests get stable bytes; by default it is time-based
    /// like iproute2's, so requests of different runs are told apart in traces.
    package init(transport: any NetlinkTransport, firstSequence: UInt32? = nil) {
        self.transport = transport
        self.nextSequence = firstSequence ?? UInt32(truncatingIfNeeded: time(nil))
    }

    package func takeSequence() -> UInt32 {
        let sequence = nextSequence
        nextSequence &+= 1
        return sequence
    }

    /// Sends a request with NLM_F_ACK and waits for the kernel's answer: the data messages
    /// it returned (for gets) once the ACK arrives, or the error it reported.
    @discardableResult
    package func execute(_ request: MessageBuilder) throws(NetlinkError) -> [NetlinkMessage] {
        let sequence = takeSequence()
        try transport.send(try request.bytes(sequence: sequence, extraFlags: NLM_F_ACK))
        return try collect(sequence: sequence, operation: request.operation).messages
    }

    /// Sends a request encoded elsewhere (libnftnl) for `sequence`, which must carry
    /// NLM_F_ACK, and collects the data messages up to the ACK.
    package func execute(encoded: (UInt32) -> [UInt8], operation: String) throws(NetlinkError) -> [NetlinkMessage] {
        let sequence = takeSequence()
        try transport.send(encoded(sequence))
        return try collect(sequence: sequence, operation: operation).messages
    }

    /// Runs a dump (NLM_F_DUMP) to its NLMSG_DONE and returns every data message; restarts it
    /// when the kernel flags it interrupted, since the result may then be inconsistent.
    ///
    /// Dumps carry no NLM_F_ACK: they always end with NLMSG_DONE, which carries the status.
    package func dump(_ makeRequest: () -> MessageBuilder) throws(NetlinkError) -> [NetlinkMessage] {
        let first = makeRequest()
        var pending: MessageBuilder? = first
        return try dump(operation: first.operation) { sequence throws(NetlinkError) in
            let request = pending ?? makeRequest()
            pending = nil
            return try request.bytes(sequence: sequence, extraFlags: NLM_F_DUMP)
        }
    }

    /// A dump whose request is encoded elsewhere (libnftnl) for each attempt's sequence number.
    package func dump(
        operation: String, encoded: (UInt32) throws(NetlinkError) -> [UInt8]
    ) throws(NetlinkError) -> [NetlinkMessage] {
        for _ in 0..<Self.dumpAttempts {
            let sequence = takeSequence()
            try transport.send(try encoded(sequence))
            let (messages, interrupted) = try collect(sequence: sequence, operation: operation)
            if !interrupted { return messages }
        }
        throw NetlinkError(
            .dumpInterrupted, operation: operation, errno: EINTR,
            detail: "the kernel reported the dump inconsistent \(Self.dumpAttempts) times in a row")
    }

    /// Reads the replies to `sequence` until an ACK, an error or NLMSG_DONE; the Bool says
    /// whether the kernel flagged them as an interrupted dump (NLM_F_DUMP_INTR).
    private func collect(sequence: UInt32, operation: String) throws(NetlinkError) -> (
        messages: [NetlinkMessage], interrupted: Bool
    ) {
        var data: [NetlinkMessage] = []
        var interrupted = false
        while true {
            for message in try receiveMessages(accepting: sequence...sequence, operation: operation) {
                if message.flags & NetlinkHeader.dumpInterrupted != 0 { interrupted = true }
                switch message.type {
                case NetlinkHeader.noop:
                    continue
                case NetlinkHeader.error:
                    if let error = try Self.failure(in: message, operation: operation) { throw error }
                    return (data, interrupted)
                case NetlinkHeader.done:
                    if let error = try Self.failure(in: message, operation: operation) { throw error }
                    return (data, interrupted)
                default:
                    data.append(message)
                }
            }
        }
    }

    /// Waits until every sequence in `awaited` has its ACK or error, for a request of several
    /// messages (an nf_tables batch) whose replies carry sequences in `accepted`. Returns the
    /// failures in the order they came. An error for a sequence not awaited (a message that
    /// asked for no ACK, like a batch header) concerns the whole request and ends the wait at
    /// once; so does a receive failure once some error is in, because after a failure the
    /// kernel may stop acknowledging the rest.
    package func acknowledgements(
        of awaited: Set<UInt32>, accepting accepted: ClosedRange<UInt32>, operation: String
    ) throws(NetlinkError) -> [(sequence: UInt32, error: NetlinkError)] {
        var waiting = awaited
        var failures: [(sequence: UInt32, error: NetlinkError)] = []
        while !waiting.isEmpty {
            let messages: [NetlinkMessage]
            do throws(NetlinkError) {
                messages = try receiveMessages(accepting: accepted, operation: operation)
            } catch {
                if !failures.isEmpty, error.kind == .socket { return failures }
                throw error
            }
            for message in messages where message.type == NetlinkHeader.error {
                let failure = try Self.failure(in: message, operation: operation)
                guard waiting.remove(message.sequence) != nil else {
                    if let failure { return failures + [(message.sequence, failure)] }
                    continue
                }
                if let failure { failures.append((message.sequence, failure)) }
            }
        }
        return failures
    }

    /// Receives one datagram and checks that every message in it answers this request.
    package func receiveMessages(
        accepting accepted: ClosedRange<UInt32>, operation: String
    ) throws(NetlinkError) -> [NetlinkMessage] {
        let datagram = try transport.receive()
        guard let messages = NetlinkMessage.split(datagram) else {
            throw NetlinkError(
                .protocolViolation, operation: operation, errno: EPROTO,
                detail: "malformed reply (\(datagram.count) bytes)")
        }
        for message in messages {
            guard accepted.contains(message.sequence) else {
                let expected =
                    accepted.count == 1 ? "\(accepted.lowerBound)" : "\(accepted.lowerBound)...\(accepted.upperBound)"
                throw NetlinkError(
                    .protocolViolation, operation: operation, errno: EPROTO,
                    detail: "reply has sequence number \(message.sequence), expected \(expected)")
            }
            guard message.portID == transport.portID else {
                throw NetlinkError(
                    .protocolViolation, operation: operation, errno: EPROTO,
                    detail: "reply is addressed to port \(message.portID), ours is \(transport.portID)")
            }
        }
        return messages
    }

    /// The error an NLMSG_ERROR or NLMSG_DONE reports, nil for an ACK or a good end of dump.
    /// Both start with the status (0 or -errno); with extended ACK the kernel appends TLVs,
    /// after the (possibly capped) echoed request in an error, and NLMSGERR_ATTR_MSG is its
    /// reason.
    package static func failure(in message: NetlinkMessage, operation: String) throws(NetlinkError) -> NetlinkError? {
        let payload = message.payload
        guard payload.count >= 4 else {
            throw NetlinkError(
                .protocolViolation, operation: operation, errno: EPROTO, detail: "short status message")
        }
        let code = readI32(payload, 0)
        if code == 0 { return nil }
        guard code < 0, code != Int32.min else {
            throw NetlinkError(
                .protocolViolation, operation: operation, errno: EPROTO, detail: "status \(code) is not an errno")
        }
        var detail: String?
        if message.flags & NetlinkHeader.ackTLVs != 0 {
            var tlvOffset = 4
            if message.type == NetlinkHeader.error {
                let echoedLength =
                    message.flags & NetlinkHeader.capped != 0
                    ? NetlinkMessage.headerLength : Int(readU32(payload, 4))
                tlvOffset += align(echoedLength)
            }
            if tlvOffset <= payload.count {
                detail = Attributes(payload, from: tlvOffset).string(UInt16(NLMSGERR_ATTR_MSG.rawValue))
            }
        }
        return NetlinkError(.kernel, operation: operation, errno: -code, detail: detail)
    }
}
