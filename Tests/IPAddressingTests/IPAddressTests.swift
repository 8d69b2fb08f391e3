import Testing

@testable import IPAddressing

struct IPAddressTests {
    @Test(arguments: [
        ("10.1.2.3", "10.1.2.3"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
        ("::", "::"), ("::1", "::1"), ("2001:DB8::1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), ("fd00:0:0:0:0:0:0:0", "fd00::"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"), ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("fe80::", "fe80::"),
    ])
    func parsesAndFormatsCanonically(input: String, canonical: String) throws {
        let address = try #require(IPAddress(input))
        #expect(address.description == canonical)
        #expect(IPAddress(bytes: address.bytes) == address)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", "1..2.3", "1.2.3.", ".1.2.3", "1.2.3.0004",
        "1.2.3.00", "1.2.3.4 ", "１.2.3.4", ":::", "1::2::3",
        "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "1.2.3.4/24", "::1%eth0",
    ])
    func rejectsMalformed(input: String) {
        #expect(IPAddress(input) == nil)
    }

    @Test func arithmeticAndMasks() throws {
        let a = try #require(IPAddress("10.0.0.255"))
        #expect(a.advanced(by: 1)?.description == "10.0.1.0")
        #expect(IPAddress.v4(0).advanced(by: -1) == nil)
        let b = try #require(IPAddress("::ffff:ffff:ffff:ffff"))
        #expect(b.advanced(by: 1)?.description == "0:0:0:1::")
        #expect(try #require(IPAddress("0:0:0:1::")).advanced(by: -1) == b)
        #expect(try #require(IPAddress("10.1.2.3")).masked(to: 16).description == "10.1.0.0")
        #expect(
            try #require(IPAddress("2001:db8::ff")).masked(to: 120, settingHostBits: true).description
                == "2001:db8::ff")
        #expect(try #require(IPAddress("2001:db8::1")) < #require(IPAddress("2001:db8::2")))
    }

    @Test func prefixes() throws {
        let p = try #require(IPPrefix("10.1.2.3/24"))
        #expect(p.description == "10.1.2.3/24")
        #expect(p.network.description == "10.1.2.0/24")
        #expect(p.lastAddress.description == "10.1.2.255")
        #expect(p.netmask.description == "255.255.255.0")
        #expect(p.contains(try #require(IPAddress("10.1.2.200"))))
        #expect(!p.contains(try #require(IPAddress("10.1.3.1"))))
        #expect(try #require(IPPrefix("10.0.0.0/8")).overlaps(p))
        #expect(!(try #require(IPPrefix("10.2.0.0/16")).overlaps(p)))
        #expect(IPPrefix("10.1.2.3/33") == nil)
        #expect(IPPrefix("10.1.2.3") == nil)
        #expect(IPPrefix("10.1.2.3", allowBareAddress: true)?.length == 32)
        #expect(IPPrefix("fd00::1/64")?.network.description == "fd00::/64")
        #expect(IPPrefix("fd00::/129") == nil)
    }

    @Test func macAddresses() throws {
        let mac = try #require(MACAddress("02:AB:cd:00:11:22"))
        #expect(mac.description == "02:ab:cd:00:11:22")
        #expect(MACAddress("02:ab:cd:00:11") == nil)
        #expect(MACAddress("02:ab:cd:00:11:2") == nil)
        let random = MACAddress.randomLocal()
        #expect(!random.isMulticast)
        #expect(random.bytes[0] & 2 == 2)
    }
}
