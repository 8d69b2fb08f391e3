import IPAddressing
import Netlink
import Testing

/// The frames agents and plugins send to tell a link where an address is now: byte layout,
/// and an ICMPv6 checksum that verifies (the sum over pseudo-header and message is 0xffff).
@Suite struct AnnouncementFrameTests {
    let mac = MACAddress(bytes: [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]) ?? MACAddress.randomLocal()

    @Test func ipv4IsAGratuitousARPReplyToBroadcast() throws {
        let address = try #require(IPAddress("10.239.7.5"))
        let frame = NeighbourAnnouncement(address: address, mac: mac).frame
        let ip: [UInt8] = [10, 239, 7, 5]
        let expected: [UInt8] =
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + mac.bytes + [0x08, 0x06]
            + [0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02] + mac.bytes + ip + mac.bytes + ip
        #expect(frame == expected)
    }

    @Test func ipv6IsAnUnsolicitedOverridingNeighbourAdvertisementToAllNodes() throws {
        let address = try #require(IPAddress("fd39:7::5"))
        let frame = NeighbourAnnouncement(address: address, mac: mac).frame
        try #require(frame.count == 14 + 40 + 32)
        #expect(Array(frame[0..<6]) == [0x33, 0x33, 0, 0, 0, 1])
        #expect(Array(frame[6..<12]) == mac.bytes)
        #expect(Array(frame[12..<14]) == [0x86, 0xdd])
        let header = Array(frame[14..<54])
        #expect(header[0] >> 4 == 6)
        #expect(Int(header[4]) << 8 | Int(header[5]) == 32, "payload length")
        #expect(header[6] == 58, "next header ICMPv6")
        #expect(header[7] == 255, "hop limit")
        #expect(Array(header[8..<24]) == address.bytes)
        let allNodes = try #require(IPAddress("ff02::1")).bytes
        #expect(Array(header[24..<40]) == allNodes)
        let icmp = Array(frame[54...])
        #expect(icmp[0] == 136 && icmp[1] == 0, "neighbour advertisement, code 0")
        #expect(icmp[4] == 0x20, "override set; solicited and router clear")
        #expect(Array(icmp[8..<24]) == address.bytes)
        #expect(Array(icmp[24...]) == [2, 1] + mac.bytes, "target link-layer address option")

        // Summing everything, the checksum included, gives all ones when it is right.
        var words = address.bytes + allNodes + [0, 0, 0, 32, 0, 0, 0, 58] + icmp
        if words.count % 2 == 1 { words.append(0) }
        var sum: UInt32 = 0
        for index in stride(from: 0, to: words.count, by: 2) {
            sum += UInt32(words[index]) << 8 | UInt32(words[index + 1])
        }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        #expect(sum == 0xffff)
    }
}
