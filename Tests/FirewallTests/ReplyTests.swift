import Foundation
import IPAddressing
import NetlinkCore
import Testing

@testable import Firewall

/// How replies are matched to requests, with a fake kernel (no root needed).
struct ReplyTests {
    private let element = PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "c1/eth0")

    @Test func everyMessageMustBeAcknowledged() throws {
        let fake = RecordingTransport()
        let nft = NFTablesClient(transport: fake, firstSequence: 100)
        try nft.commit(PierLayout.setup)
        #expect(fake.sent.count == 1)  // one datagram: the whole batch
        // BATCH_BEGIN, the table, four chains, the map and the set, BATCH_END.
        #expect(RecordingTransport.sequences(of: fake.sent[0]) == Array(100...108))
    }

    @Test func errorNamesTheMessageThatFailed() throws {
        let fake = RecordingTransport()
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        var batch = PierLayout.setup  // begin 1, table 2, chains 3-6, map 7, set 8
        batch.addElements([element], to: PierLayout.dnatMap.path, exclusive: true)  // 9
        fake.failures[9] = EEXIST
        let error = try #require(throws: FirewallError.self) { try nft.commit(batch) }
        #expect(error.isAlreadyExists)
        #expect(error.operation == "add set elements")
        #expect(error.object == "inet pier dnat_v4")
    }

    @Test func silenceIsAnErrorNotSuccess() throws {
        let fake = RecordingTransport()
        fake.autoAcknowledge = false
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        var batch = Batch()
        batch.add(PierLayout.table)
        let error = try #require(throws: FirewallError.self) { try nft.commit(batch) }
        #expect(error.errno == ETIMEDOUT)
    }

    @Test func ensuringARuleNeedsItsComment() throws {
        let fake = RecordingTransport()
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        let anonymous = Rule(family: .inet, table: "pier", chain: "postrouting").masquerade()
        let error = try #require(throws: FirewallError.self) { try nft.apply(Batch(), ensuring: [anonymous]) }
        #expect(error.errno == EINVAL)
        #expect(fake.sent.isEmpty)  // refused before anything reached the kernel
    }

    @Test func staleGenerationRejectsTheWholeBatch() throws {
        let fake = RecordingTransport()
        let pid = fake.portID
        fake.responder = { datagram in
            [
                RecordingTransport.errorReply(
                    sequence: RecordingTransport.firstSequence(of: datagram), errno: ERESTART, portID: pid)
            ]
        }
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        var batch = Batch()
        batch.addElements([element], to: PierLayout.dnatMap.path)
        let error = try #require(throws: FirewallError.self) { try nft.commit(batch, generation: 7) }
        #expect(error.isGenerationChanged)
    }

    @Test func generationCheckRetriesWithTheNewGeneration() throws {
        let fake = RecordingTransport()
        let pid = fake.portID
        var generation: UInt32 = 41
        var commits = 0
        fake.responder = { datagram in
            let sequence = RecordingTransport.firstSequence(of: datagram)
            if datagram.count > 5, datagram[4] == 16, datagram[5] == 10 {  // NFT_MSG_GETGEN (16)
                generation += 1
                let reply = nfnlMessage(
                    type: nftType(15), flags: 0, sequence: sequence, portID: pid, family: 0, [.be32(1, generation)])
                return [reply + RecordingTransport.errorReply(sequence: sequence, errno: 0, portID: pid)]
            }
            commits += 1
            // The first commit loses the race; the second goes through.
            if commits == 1 { return [RecordingTransport.errorReply(sequence: sequence, errno: ERESTART, portID: pid)] }
            return RecordingTransport.sequences(of: datagram).dropFirst().dropLast().map {
                RecordingTransport.errorReply(sequence: $0, errno: 0, portID: pid)
            }
        }
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        var seenGenerations: [UInt32] = []
        let attempts = try nft.withGenerationCheck { generation in
            seenGenerations.append(generation)
            var batch = Batch()
            batch.addElements([element], to: PierLayout.dnatMap.path)
            return batch
        }
        #expect(attempts == 2)
        #expect(seenGenerations == [42, 43])
        // The last batch's BATCH_BEGIN carries NFNL_BATCH_GENID = 43.
        let lastBatch = try #require(fake.sent.last)
        #expect(Array(lastBatch[20..<28]) == [8, 0, 1, 0, 0, 0, 0, 43])
    }

    @Test func conntrackDeleteRequestNamesTheOriginalTuple() throws {
        let entry = ConntrackEntry(
            protocolNumber: 17, source: try #require(IPAddress("10.1.0.2")),
            destination: try #require(IPAddress("10.1.0.1")), sourcePort: 40000, destinationPort: 5353, zone: nil)
        let bytes = try ConntrackClient.deleteRequest(entry).bytes(sequence: 9, extraFlags: 0x4)  // NLM_F_ACK
        let expected = nfnlMessage(
            type: 1 << 8 | 2, flags: 0x5, sequence: 9, family: 2,
            [
                .nest(
                    1,
                    [
                        .nest(1, [.raw(1, [10, 1, 0, 2]), .raw(2, [10, 1, 0, 1])]),
                        .nest(2, [.raw(1, [17]), .raw(2, [0x9c, 0x40]), .raw(3, [0x14, 0xe9])]),
                    ])
            ])
        #expect(hex(bytes) == hex(expected))
    }

    // MARK: - The shared netlink core, seen from nf_tables and ctnetlink

    /// A reply to a plain get: the data messages, then the ACK, in one datagram.
    private func generationReply(to request: [UInt8], portID: UInt32, generation: UInt32 = 7) -> [UInt8] {
        let sequence = RecordingTransport.firstSequence(of: request)
        return nfnlMessage(
            type: nftType(15), flags: 0, sequence: sequence, portID: portID, family: 0, [.be32(1, generation)])
            + RecordingTransport.errorReply(sequence: sequence, errno: 0, portID: portID)
    }

    @Test func malformedReplyIsAProtocolErrorNotAnEmptyAnswer() throws {
        let fake = RecordingTransport()
        let pid = fake.portID
        // The ACK claims 4 bytes more than the datagram holds.
        fake.responder = { [Array(self.generationReply(to: $0, portID: pid).dropLast(4))] }
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        let error = try #require(throws: FirewallError.self) { _ = try nft.generation() }
        #expect(error.errno == EPROTO)
        #expect(error.cause?.kind == .protocolViolation)
    }

    @Test func replyToAnotherRequestOrPortIsRejected() throws {
        let fake = RecordingTransport()
        let pid = fake.portID
        var reply: ([UInt8]) -> [UInt8] = { request in
            var bytes = self.generationReply(to: request, portID: pid)
            bytes[8] &+= 1  // sequence number of another request
            return bytes
        }
        fake.responder = { [reply($0)] }
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        let sequence = try #require(throws: FirewallError.self) { _ = try nft.generation() }
        #expect(sequence.cause?.kind == .protocolViolation)
        #expect(sequence.description.contains("sequence number"))
        reply = { self.generationReply(to: $0, portID: pid + 1) }
        let port = try #require(throws: FirewallError.self) { _ = try nft.generation() }
        #expect(port.cause?.kind == .protocolViolation)
        #expect(port.description.contains("port"))
    }

    @Test func kernelReasonReachesTheBatchError() throws {
        let fake = RecordingTransport()
        let pid = fake.portID
        fake.responder = { datagram in
            let sequences = RecordingTransport.sequences(of: datagram)
            return sequences.dropFirst().dropLast().map { sequence in
                RecordingTransport.errorReply(
                    sequence: sequence, errno: sequence == 2 ? EINVAL : 0, portID: pid, request: datagram,
                    extendedAckMessage: sequence == 2 ? "unknown table flag" : nil)
            }
        }
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        var batch = Batch()
        batch.add(PierLayout.table)
        let error = try #require(throws: FirewallError.self) { try nft.commit(batch) }
        #expect(error.errno == EINVAL)
        #expect(error.operation == "add table")
        #expect(error.object == "inet pier")
        #expect(error.kernelMessage == "unknown table flag")
    }

    @Test func interruptedDumpIsRestartedAndTheFreshResultKept() throws {
        let fake = RecordingTransport()
        let pid = fake.portID
        var attempt = 0
        fake.responder = { request in
            attempt += 1
            let sequence = RecordingTransport.firstSequence(of: request)
            // NLM_F_MULTI, plus NLM_F_DUMP_INTR on the first attempt.
            let flags: UInt16 = attempt == 1 ? 0x12 : 0x02
            let table = nfnlMessage(
                type: nftType(0), flags: flags, sequence: sequence, portID: pid, family: 1,
                [.string(1, attempt == 1 ? "stale" : "fresh")])
            return [table, RecordingTransport.done(sequence: sequence, portID: pid, flags: flags)]
        }
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        #expect(try nft.tables().map(\.name) == ["fresh"])
        #expect(fake.sent.count == 2)
    }

    @Test func aDumpThatNeverSettlesAsksTheCallerToTryAgain() throws {
        let fake = RecordingTransport()
        let pid = fake.portID
        fake.responder = { request in
            [RecordingTransport.done(sequence: RecordingTransport.firstSequence(of: request), portID: pid, flags: 0x12)]
        }
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        let error = try #require(throws: FirewallError.self) { _ = try nft.tables() }
        #expect(error.isGenerationChanged)
        #expect(fake.sent.count == 5)
    }

    @Test func conntrackListsOverTheSharedCore() throws {
        let fake = RecordingTransport()
        let pid = fake.portID
        fake.responder = { request in
            let sequence = RecordingTransport.firstSequence(of: request)
            // IPCTNL_MSG_CT_NEW: CTA_TUPLE_ORIG { CTA_TUPLE_IP { V4_SRC, V4_DST }, CTA_TUPLE_PROTO
            // { NUM, SRC_PORT, DST_PORT } }, CTA_ZONE.
            let entry = nfnlMessage(
                type: 1 << 8, flags: 0x2, sequence: sequence, portID: pid, family: 2,
                [
                    .nest(
                        1,
                        [
                            .nest(1, [.raw(1, [10, 1, 0, 2]), .raw(2, [10, 1, 0, 1])]),
                            .nest(2, [.raw(1, [17]), .raw(2, [0x9c, 0x40]), .raw(3, [0x14, 0xe9])]),
                        ]),
                    .raw(18, [0, 3]),
                ])
            return [entry, RecordingTransport.done(sequence: sequence, portID: pid)]
        }
        let conntrack = ConntrackClient(transport: fake, firstSequence: 5)
        let entries = try conntrack.entries(family: .v4)
        #expect(
            entries == [
                ConntrackEntry(
                    protocolNumber: 17, source: try #require(IPAddress("10.1.0.2")),
                    destination: try #require(IPAddress("10.1.0.1")), sourcePort: 40000, destinationPort: 5353,
                    zone: 3)
            ])
        // IPCTNL_MSG_CT_GET with NLM_F_REQUEST | NLM_F_DUMP, nfgenmsg for AF_INET.
        #expect(hex(fake.sent[0]) == hex(nfnlMessage(type: 1 << 8 | 1, flags: 0x301, sequence: 5, family: 2)))
    }
}
