import Foundation
import IPAddressing
import NetlinkCore
import Testing

@testable import Firewall

/// Deleting by filter, without root: the request bytes, one datagram for every filter, and
/// the fall back to dump-and-delete when the kernel refuses a filtered delete.
@Suite struct ConntrackFilterTests {
    /// CTA_TUPLE_REPLY { CTA_TUPLE_IP { CTA_IP_V4_SRC } }, CTA_FILTER { CTA_FILTER_REPLY_FLAGS =
    /// source address }: no complete tuple, so no kernel can take it for a delete of one entry.
    @Test func filteredDeleteNamesOnePartOfOneTuple() throws {
        let filter = ConntrackClient.Filter(family: .v4, inReply: true, source: try #require(IPAddress("10.0.0.5")))
        let bytes = try ConntrackClient.filteredDeleteRequest(filter).bytes(sequence: 3, extraFlags: 0x4)
        let expected = nfnlMessage(
            type: 1 << 8 | 2, flags: 0x5, sequence: 3, family: 2,
            [.nest(2, [.nest(1, [.raw(1, [10, 0, 0, 5])])]), .nest(25, [.raw(2, [1, 0, 0, 0])])])
        #expect(hex(bytes) == hex(expected))
    }

    @Test func portFilterComparesProtocolAndDestinationPort() throws {
        let filter = ConntrackClient.Filter(family: .v6, protocolNumber: 17, destinationPort: 5353)
        let bytes = try ConntrackClient.filteredDeleteRequest(filter).bytes(sequence: 3, extraFlags: 0x4)
        let expected = nfnlMessage(
            type: 1 << 8 | 2, flags: 0x5, sequence: 3, family: 10,
            [.nest(1, [.nest(2, [.raw(1, [17]), .raw(3, [0x14, 0xe9])])]), .nest(25, [.raw(1, [0x28, 0, 0, 0])])])
        #expect(hex(bytes) == hex(expected))
    }

    @Test func everyEndOfEitherTupleInOneDatagram() throws {
        let fake = RecordingTransport()
        let conntrack = ConntrackClient(transport: fake, firstSequence: 10)
        try conntrack.forget([try #require(IPAddress("10.0.0.5")), try #require(IPAddress("fd00::5"))])
        #expect(fake.sent.count == 1)
        #expect(RecordingTransport.sequences(of: fake.sent[0]) == Array(10...17))
    }

    /// EINVAL (a kernel before 6.12 reads the partial tuple as a broken one): dump, then delete
    /// what names the address by its original tuple.
    @Test func refusedFilterFallsBackToDumpAndDelete() throws {
        let fake = RecordingTransport()
        fake.failures[10] = EINVAL
        let conntrack = ConntrackClient(transport: fake, firstSequence: 10)
        try conntrack.forget([try #require(IPAddress("10.0.0.5"))])
        #expect(fake.sent.count == 2)
        // IPCTNL_MSG_CT_GET with NLM_F_REQUEST | NLM_F_DUMP for AF_INET.
        #expect(hex(fake.sent[1]) == hex(nfnlMessage(type: 1 << 8 | 1, flags: 0x301, sequence: 14, family: 2)))
    }

    @Test func otherFailuresAreReported() throws {
        let fake = RecordingTransport()
        fake.failures[11] = EPERM
        let conntrack = ConntrackClient(transport: fake, firstSequence: 10)
        #expect(throws: FirewallError.self) { try conntrack.forget([try #require(IPAddress("10.0.0.5"))]) }
        #expect(fake.sent.count == 1)
    }
}
