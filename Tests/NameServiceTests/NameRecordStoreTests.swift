import Foundation
import IPAddressing
import NameService
import Testing

/// The records directory: atomic files per attachment, readers that skip the broken ones.
struct NameRecordStoreTests {
    static func withStore(_ body: (NameRecordStore) throws -> Void) throws {
        let directory = NSTemporaryDirectory() + "pier-t-names-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(NameRecordStore(directory: directory))
    }

    static let record = NameRecord(
        network: "front", containerID: "c1", ifName: "eth0", names: ["web", "alias"],
        addresses: [address("10.88.0.2")], gateways: [address("10.88.0.1")], domainName: "dns.pier",
        upstreams: [upstream("192.0.2.1:5353"), upstream("[2001:db8::1]:53")])

    @Test func recordsRoundTripThroughTheirFiles() throws {
        try Self.withStore { store in
            try store.withLock { try store.write(Self.record) }
            #expect(try store.record(network: "front", containerID: "c1", ifName: "eth0") == Self.record)
            #expect(store.allRecords() == [Self.record])
            #expect(FileManager.default.fileExists(atPath: store.directory + "/front/c1:eth0"))
            #expect(try store.withLock { try store.remove(network: "front", containerID: "c1", ifName: "eth0") })
            // The network's directory goes with its last record; removing again is no error.
            #expect(!FileManager.default.fileExists(atPath: store.directory + "/front"))
            #expect(try !store.withLock { try store.remove(network: "front", containerID: "c1", ifName: "eth0") })
        }
    }

    @Test func brokenFilesAreSkippedAndReported() throws {
        try Self.withStore { store in
            try store.withLock { try store.write(Self.record) }
            try Data("{not json".utf8).write(to: URL(fileURLWithPath: store.directory + "/front/c2:eth0"))
            var skipped: [String] = []
            #expect(store.records(network: "front") { path, _ in skipped.append(path) } == [Self.record])
            #expect(skipped == [store.directory + "/front/c2:eth0"])
        }
    }

    @Test func upstreamsAndNamesAreValidated() {
        #expect(DNSUpstream("192.0.2.1")?.port == 53)
        #expect(DNSUpstream("192.0.2.1:5353")?.port == 5353)
        #expect(DNSUpstream("[2001:db8::1]:54")?.description == "[2001:db8::1]:54")
        #expect(DNSUpstream("2001:db8::1")?.port == 53)
        for bad in ["", "host.example", "192.0.2.1:0", "192.0.2.1:99999", "[2001:db8::1", "[::1]x"] {
            #expect(DNSUpstream(bad) == nil, "\(bad)")
        }
        for good in ["web", "my_container", "a.b-c", String(repeating: "a", count: 63)] {
            #expect(NameRecord.isValidName(good), "\(good)")
        }
        for bad in ["", "a..b", "-", "white space", "a/b", String(repeating: "a", count: 64), "é"] where bad != "-" {
            #expect(!NameRecord.isValidName(bad), "\(bad)")
        }
        #expect(
            ResolvConf.nameservers("# c\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nsearch x\nnameserver bogus\n")
                .map(\.description) == ["192.0.2.1", "fe80::1"])
    }
}
