import Foundation
import IPAddressing
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
        #expect(RecordingTransport.sequences(of: fake.sent[0]) == Array(100...107))
    }

    @Test func errorNamesTheMessageThatFailed() throws {
        let fake = RecordingTransport()
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        var batch = PierLayout.setup  // begin 1, table 2, chains 3-5, sets 6-7
        batch.addElements([element], to: PierLayout.dnatMap.path, exclusive: true)  // 8
        fake.failures[8] = EEXIST
        let error = try #require(throws: FirewallError.self) { try nft.commit(batch) }
        #expect(error.isAlreadyExists)
        #expect(error.operation == "add set elements")
        #expect(error.object == "inet pier dnat4")
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
        fake.responder = { datagram in
            [RecordingTransport.errorReply(sequence: RecordingTransport.firstSequence(of: datagram), errno: ERESTART)]
        }
        let nft = NFTablesClient(transport: fake, firstSequence: 1)
        var batch = Batch()
        batch.addElements([element], to: PierLayout.dnatMap.path)
        let error = try #require(throws: FirewallError.self) { try nft.commit(batch, generation: 7) }
        #expect(error.isGenerationChanged)
    }

    @Test func generationCheckRetriesWithTheNewGeneration() throws {
        let fake = RecordingTransport()
        var generation: UInt32 = 41
        var commits = 0
        fake.responder = { datagram in
            let sequence = RecordingTransport.firstSequence(of: datagram)
            if datagram.count > 5, datagram[4] == 16, datagram[5] == 10 {  // NFT_MSG_GETGEN (16)
                generation += 1
                let reply = nfnlMessage(
                    type: nftType(15), flags: 0, sequence: sequence, family: 0, [.be32(1, generation)])
                return [reply + RecordingTransport.errorReply(sequence: sequence, errno: 0)]
            }
            commits += 1
            // The first commit loses the race; the second goes through.
            if commits == 1 { return [RecordingTransport.errorReply(sequence: sequence, errno: ERESTART)] }
            return RecordingTransport.sequences(of: datagram).dropFirst().dropLast().map {
                RecordingTransport.errorReply(sequence: $0, errno: 0)
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
        let bytes = ConntrackClient.deleteRequest(entry, sequence: 9)
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
}
