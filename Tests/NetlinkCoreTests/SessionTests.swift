import CPierShim
import Glibc
import Testing

@testable import NetlinkCore

/// Reply bytes written out by hand (native order, as netlink uses), independent of the core.
private enum Bytes {
    static func u16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xff), UInt8(value >> 8)] }
    static func u32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> (8 * $0)) & 0xff) } }
    static func i32(_ value: Int32) -> [UInt8] { u32(UInt32(bitPattern: value)) }
    static func pad(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4) }
    static func attr(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        pad(u16(UInt16(4 + payload.count)) + u16(type) + payload)
    }
    static func message(type: UInt16, flags: UInt16, seq: UInt32, pid: UInt32, _ body: [UInt8]) -> [UInt8] {
        u32(UInt32(16 + body.count)) + u16(type) + u16(flags) + u32(seq) + u32(pid) + body
    }
    static func seq(of request: [UInt8]) -> UInt32 { readU32(request, 8) }
}

/// The protocols the core serves, each with a request it would really send: rtnetlink
/// RTM_GETLINK (ifinfomsg) and ctnetlink IPCTNL_MSG_CT_GET (nfgenmsg).
enum RequestKind: CaseIterable {
    case route, netfilter

    func request() -> MessageBuilder {
        switch self {
        case .route:
            let request = MessageBuilder(type: 18, flags: 0, operation: "get link lo")
            request.putFixedHeader([UInt8](repeating: 0, count: 16))
            request.put(3, string: "lo")
            return request
        case .netfilter:
            let request = MessageBuilder(type: 1 << 8 | 1, flags: 0, operation: "get conntrack entry")
            request.putFixedHeader([2, 0, 0, 0])
            return request
        }
    }
}

@Suite struct FramingTests {
    @Test func wellFormedDatagramsSplitIntoTheirMessages() throws {
        let first = Bytes.message(type: 16, flags: 2, seq: 7, pid: 9, [1, 2, 3, 4, 5])
        // The last message may end without padding.
        let second = Bytes.message(type: 3, flags: 2, seq: 7, pid: 9, [0, 0, 0, 0, 1])
        let messages = try #require(NetlinkMessage.split(Bytes.pad(first) + second))
        #expect(messages.map(\.type) == [16, 3])
        #expect(messages[0].payload == [1, 2, 3, 4, 5])
        #expect(messages[1].payload == [0, 0, 0, 0, 1])
        #expect(messages.allSatisfy { $0.sequence == 7 && $0.portID == 9 && $0.flags == 2 })
    }

    @Test func malformedDatagramsAreRejectedNotCutShort() {
        let good = Bytes.message(type: 2, flags: 0, seq: 1, pid: 1, Bytes.i32(0) + [UInt8](repeating: 0, count: 16))
        var tooShortLength = good
        tooShortLength[0] = 8
        #expect(NetlinkMessage.split([]) == nil)
        #expect(NetlinkMessage.split(Array(good.dropLast())) == nil)  // length beyond the datagram
        #expect(NetlinkMessage.split(tooShortLength) == nil)  // length below a header
        #expect(NetlinkMessage.split(good + [0, 0, 0, 0]) == nil)  // bytes that cannot be a message
        #expect(NetlinkMessage.split(good)?.count == 1)
    }

    @Test func randomBytesNeverCrashTheReaders() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<256 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = NetlinkMessage.split(bytes)
            let attributes = Attributes(bytes)
            _ = attributes.string(1)
            _ = attributes.be32(2)
            _ = attributes.nested(3)?.u16(1)
            _ = Attributes(bytes, from: length + 10).entries
        }
    }

    @Test func aMessageLendsItsWholeBytesToCParsers() throws {
        let bytes = Bytes.message(type: 0xa00, flags: 0x2, seq: 5, pid: 6, [1, 0, 0, 0] + Bytes.attr(1, [7]))
        let message = try #require(NetlinkMessage.split(bytes)?.first)
        let lent = message.withUnsafeMessage { header in
            Array(UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len)))
        }
        #expect(lent == bytes)
    }
}

@Suite struct MessageBuilderTests {
    @Test func buildsHeaderFamilyHeaderAttributesAndNests() throws {
        let request = MessageBuilder(type: 16, flags: NLM_F_CREATE | NLM_F_EXCL, operation: "create")
        request.putFixedHeader([2, 0, 0])  // padded to 4
        request.put(3, string: "eth0")
        request.nest(18) {
            request.put(1, u8: 7)
            request.put(2, be16: 4789)
        }
        let expected = Bytes.message(
            type: 16, flags: 0x1 | 0x4 | 0x400 | 0x200, seq: 42, pid: 0,
            [2, 0, 0, 0] + Bytes.attr(3, Array("eth0".utf8) + [0])
                + Bytes.attr(18 | 0x8000, Bytes.attr(1, [7]) + Bytes.attr(2, [0x12, 0xb5])))
        #expect(try request.bytes(sequence: 42, extraFlags: NLM_F_ACK) == expected)
    }

    @Test func anOversizedRequestIsAnErrorNotAnOverrun() {
        let request = MessageBuilder(type: 16, flags: 0, operation: "too big")
        for _ in 0..<20 { request.put(1, [UInt8](repeating: 1, count: 1000)) }
        #expect(
            throws: NetlinkError(
                .messageTooLarge, operation: "too big", errno: EMSGSIZE, detail: "request exceeds 16384 bytes")
        ) {
            _ = try request.bytes(sequence: 1)
        }
    }
}

@Suite struct SessionTests {
    let pid: UInt32 = 31

    private func makeSession(_ responder: @escaping ([UInt8]) -> [[UInt8]]?) -> (NetlinkSession, RecordingTransport) {
        let transport = RecordingTransport(portID: pid)
        transport.responder = responder
        return (NetlinkSession(transport: transport, firstSequence: 100), transport)
    }

    @Test(arguments: RequestKind.allCases)
    func malformedReplyIsAProtocolError(_ proto: RequestKind) throws {
        let pid = self.pid
        let (session, _) = makeSession { request in
            [Array(RecordingTransport.errorReply(sequence: Bytes.seq(of: request), errno: 0, portID: pid).dropLast(2))]
        }
        let error = try #require(throws: NetlinkError.self) { try session.execute(proto.request()) }
        #expect(error.kind == .protocolViolation)
        #expect(error.errno == EPROTO)
        #expect(error.detail?.contains("malformed") == true)
    }

    @Test(arguments: RequestKind.allCases)
    func replyToAnotherSequenceIsRejected(_ proto: RequestKind) throws {
        let pid = self.pid
        let (session, _) = makeSession { request in
            [RecordingTransport.errorReply(sequence: Bytes.seq(of: request) &+ 1, errno: 0, portID: pid)]
        }
        let error = try #require(throws: NetlinkError.self) { try session.execute(proto.request()) }
        #expect(error.kind == .protocolViolation)
        #expect(error.detail == "reply has sequence number 101, expected 100")
    }

    @Test(arguments: RequestKind.allCases)
    func replyToAnotherPortIsRejected(_ proto: RequestKind) throws {
        let (session, _) = makeSession { request in
            [RecordingTransport.errorReply(sequence: Bytes.seq(of: request), errno: 0, portID: 77)]
        }
        let error = try #require(throws: NetlinkError.self) { try session.execute(proto.request()) }
        #expect(error.kind == .protocolViolation)
        #expect(error.detail == "reply is addressed to port 77, ours is 31")
    }

    @Test func silenceIsATimeoutError() throws {
        let (session, _) = makeSession { _ in [] }
        let error = try #require(throws: NetlinkError.self) { try session.execute(RequestKind.route.request()) }
        #expect(error.kind == .socket)
        #expect(error.errno == ETIMEDOUT)
    }

    @Test func extendedAckTextIsTheErrorDetailCappedOrNot() throws {
        let pid = self.pid
        var capped = true
        let (session, _) = makeSession { request in
            let text = Bytes.attr(1, Array("Unknown device type".utf8) + [0])
            // Capped: only the request header is echoed; uncapped: the whole request.
            let echoed = capped ? Array(request[0..<16]) : request
            return [
                Bytes.message(
                    type: 2, flags: (capped ? 0x100 : 0) | 0x200, seq: Bytes.seq(of: request), pid: pid,
                    Bytes.i32(-EOPNOTSUPP) + echoed + text)
            ]
        }
        for form in [true, false] {
            capped = form
            let error = try #require(throws: NetlinkError.self) { try session.execute(RequestKind.route.request()) }
            #expect(
                error
                    == NetlinkError(.kernel, operation: "get link lo", errno: EOPNOTSUPP, detail: "Unknown device type")
            )
        }
        // A failing dump reports its status in NLMSG_DONE, with the text after it.
        let (dumping, _) = makeSession { request in
            [
                Bytes.message(
                    type: 3, flags: 0x2 | 0x200, seq: Bytes.seq(of: request), pid: pid,
                    Bytes.i32(-EINVAL) + Bytes.attr(1, Array("bad filter".utf8) + [0]))
            ]
        }
        let error = try #require(throws: NetlinkError.self) { _ = try dumping.dump { RequestKind.netfilter.request() } }
        #expect(error == NetlinkError(.kernel, operation: "get conntrack entry", errno: EINVAL, detail: "bad filter"))
    }

    @Test func getReturnsTheDataBeforeTheAck() throws {
        let pid = self.pid
        let (session, transport) = makeSession { request in
            let seq = Bytes.seq(of: request)
            return [
                Bytes.message(type: 16, flags: 0, seq: seq, pid: pid, [1, 2, 3, 4])
                    + RecordingTransport.errorReply(sequence: seq, errno: 0, portID: pid)
            ]
        }
        let messages = try session.execute(RequestKind.route.request())
        #expect(messages.map(\.payload) == [[1, 2, 3, 4]])
        // The request went out with NLM_F_REQUEST | NLM_F_ACK and the session's sequence number.
        #expect(readU16(transport.sent[0], 6) == 0x5)
        #expect(Bytes.seq(of: transport.sent[0]) == 100)
    }

    @Test func interruptedDumpIsRestartedWithANewSequence() throws {
        let pid = self.pid
        var attempts = 0
        let (session, transport) = makeSession { request in
            attempts += 1
            let seq = Bytes.seq(of: request)
            let flags: UInt16 = attempts < 3 ? 0x12 : 0x2  // NLM_F_DUMP_INTR twice
            return [
                Bytes.message(type: 16, flags: flags, seq: seq, pid: pid, [UInt8(attempts), 0, 0, 0]),
                RecordingTransport.done(sequence: seq, portID: pid, flags: flags),
            ]
        }
        let messages = try session.dump { RequestKind.route.request() }
        #expect(messages.map { $0.payload[0] } == [3])
        #expect(transport.sent.map(Bytes.seq) == [100, 101, 102])
        #expect(transport.sent.allSatisfy { readU16($0, 6) == 0x301 })  // NLM_F_REQUEST | NLM_F_DUMP
    }

    @Test func dumpInterruptedOnEveryAttemptFails() throws {
        let pid = self.pid
        let (session, transport) = makeSession { request in
            [RecordingTransport.done(sequence: Bytes.seq(of: request), portID: pid, flags: 0x12)]
        }
        let error = try #require(throws: NetlinkError.self) { _ = try session.dump { RequestKind.route.request() } }
        #expect(error.kind == .dumpInterrupted)
        #expect(error.errno == EINTR)
        #expect(transport.sent.count == NetlinkSession.dumpAttempts)
    }

    @Test func batchAcknowledgementsCollectEveryFailureAndStopAtAHeaderError() throws {
        let pid = self.pid
        let (session, _) = makeSession { _ in nil }
        let transport = try #require(session.transport as? RecordingTransport)
        // Messages 2...4 asked for ACKs; 3 fails.
        transport.replies = [2, 3, 4].map {
            RecordingTransport.errorReply(sequence: $0, errno: $0 == 3 ? EEXIST : 0, portID: pid)
        }
        let failures = try session.acknowledgements(of: [2, 3, 4], accepting: 1...5, operation: "commit")
        #expect(failures.map(\.sequence) == [3])
        #expect(failures.first?.error.errno == EEXIST)
        // An error against the header (1, no ACK asked) ends the wait at once.
        transport.replies = [RecordingTransport.errorReply(sequence: 1, errno: ERESTART, portID: pid)]
        let whole = try session.acknowledgements(of: [2, 3, 4], accepting: 1...5, operation: "commit")
        #expect(whole.map(\.sequence) == [1])
        // Once a failure is in, silence returns what came instead of hanging or hiding it.
        transport.replies = [RecordingTransport.errorReply(sequence: 2, errno: ENOENT, portID: pid)]
        let partial = try session.acknowledgements(of: [2, 3, 4], accepting: 1...5, operation: "commit")
        #expect(partial.map(\.error.errno) == [ENOENT])
        // A reply outside the batch is a protocol violation.
        transport.replies = [RecordingTransport.errorReply(sequence: 9, errno: 0, portID: pid)]
        #expect(throws: NetlinkError.self) {
            _ = try session.acknowledgements(of: [2], accepting: 1...5, operation: "commit")
        }
    }
}

@Suite struct RecordingTransportTests {
    @Test func autoAcknowledgesWhatAsksForAnAckAndEndsDumps() throws {
        let fake = RecordingTransport(portID: 5)
        let ack = try RequestKind.route.request().bytes(sequence: 1, extraFlags: NLM_F_ACK)
        let dump = try RequestKind.route.request().bytes(sequence: 2, extraFlags: NLM_F_DUMP)
        let silent = try RequestKind.route.request().bytes(sequence: 3)
        fake.failures[4] = EPERM
        let failing = try RequestKind.netfilter.request().bytes(sequence: 4, extraFlags: NLM_F_ACK)
        // One datagram of several messages (like a batch) gets one answer per message.
        try fake.send(ack + dump + silent + failing)
        #expect(fake.sent == [ack + dump + silent + failing])
        let replies = try (0..<3).map { _ in try #require(NetlinkMessage.split(try fake.receive())?.first) }
        #expect(replies.map(\.type) == [2, 3, 2])
        #expect(replies.map(\.sequence) == [1, 2, 4])
        #expect(replies.allSatisfy { $0.portID == 5 })
        #expect(replies.map { readI32($0.payload, 0) } == [0, 0, -EPERM])
        #expect(
            throws: NetlinkError(
                .socket, operation: "receive netlink reply", errno: ETIMEDOUT, detail: "no scripted reply left")
        ) {
            _ = try fake.receive()
        }
    }

    @Test func aResponderPlaysTheKernelAndNilFallsBackToTheAutomaticAnswer() throws {
        let fake = RecordingTransport(portID: 5)
        fake.responder = { request in readU16(request, 4) == 18 ? [[1, 2, 3]] : nil }
        try fake.send(try RequestKind.route.request().bytes(sequence: 1, extraFlags: NLM_F_ACK))
        try fake.send(try RequestKind.netfilter.request().bytes(sequence: 2, extraFlags: NLM_F_ACK))
        #expect(try fake.receive() == [1, 2, 3])
        #expect(NetlinkMessage.split(try fake.receive())?.first?.sequence == 2)
        fake.autoAcknowledge = false
        fake.responder = nil
        try fake.send(try RequestKind.netfilter.request().bytes(sequence: 3, extraFlags: NLM_F_ACK))
        #expect(fake.replies.isEmpty)
    }

    @Test func forwardingRecordsWhatTheRealSocketSends() throws {
        let socket = try NetlinkSocket(.route)
        let recorder = RecordingTransport(forwardingTo: socket)
        #expect(recorder.portID == socket.portID)
        let session = NetlinkSession(transport: recorder, firstSequence: 1)
        // RTM_GETLINK for lo in this test's own namespace: unprivileged, and lo always exists.
        let replies = try session.execute(RequestKind.route.request())
        #expect(replies.contains { $0.type == 16 })
        #expect(recorder.sent.count == 1)
    }
}

/// The real socket, without root: every protocol gets a receive timeout, so a reply that will
/// never come is an error instead of a hung plugin.
@Suite struct SocketTests {
    @Test(arguments: [NetlinkProtocol.route, .netfilter])
    func receiveTimesOut(_ proto: NetlinkProtocol) throws {
        let socket = try NetlinkSocket(proto, receiveTimeout: .milliseconds(100))
        #expect(socket.portID != 0)
        let clock = ContinuousClock()
        let start = clock.now
        let error = try #require(throws: NetlinkError.self) { _ = try socket.receive() }
        #expect(error.kind == .socket)
        #expect(error.errno == ETIMEDOUT)
        #expect(clock.now - start >= .milliseconds(90))
        #expect(clock.now - start < .seconds(5))
    }

    @Test func aRealDumpAndAKernelErrorOverTheCore() throws {
        let session = NetlinkSession(transport: try NetlinkSocket(.route))
        // RTM_GETLINK dump: at least lo.
        let links = try session.dump {
            let request = MessageBuilder(type: 18, flags: 0, operation: "list links")
            request.putFixedHeader([UInt8](repeating: 0, count: 16))
            return request
        }
        #expect(!links.isEmpty)
        // RTM_GETLINK for a name that does not exist: ENODEV with the kernel's own wording.
        let missing = MessageBuilder(type: 18, flags: 0, operation: "get link nope")
        missing.putFixedHeader([UInt8](repeating: 0, count: 16))
        missing.put(3, string: "pier-no-such0")
        let error = try #require(throws: NetlinkError.self) { try session.execute(missing) }
        #expect(error.kind == .kernel)
        #expect(error.errno == ENODEV)
    }
}
