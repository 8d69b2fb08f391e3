import IPAddressing
import PierState
import Testing

@Suite struct LeaseFilesTests {
    @Test func recordRoundTripsAsHostLocalWritesIt() {
        let bytes = LeaseFiles.record(containerID: "c1", ifname: "eth0")
        #expect(bytes == Array("c1\r\neth0".utf8))
        #expect(LeaseFiles.owner(of: bytes) == LeaseOwner(containerID: "c1", ifname: "eth0"))
    }

    /// The odd records the two former readers disagreed on: every case now parses the way
    /// host-local matches a record (trim the whole file, split at the first CR LF).
    @Test func oddRecordsParseAsHostLocalMatchesThem() {
        func owner(_ text: String) -> LeaseOwner? { LeaseFiles.owner(of: Array(text.utf8)) }
        #expect(owner("legacy-id") == LeaseOwner(containerID: "legacy-id", ifname: nil))
        #expect(owner("legacy-id\n") == LeaseOwner(containerID: "legacy-id", ifname: nil))
        #expect(owner("  c1\r\neth0\r\n") == LeaseOwner(containerID: "c1", ifname: "eth0"))
        // Only CR LF separates: a bare LF is part of a legacy ID (host-local would not match it).
        #expect(owner("c1\neth0") == LeaseOwner(containerID: "c1\neth0", ifname: nil))
        #expect(owner("c1\r\neth0\r\nextra") == LeaseOwner(containerID: "c1", ifname: "eth0\r\nextra"))
        // Empty or blank: left by a writer that died; the address is free.
        #expect(owner("") == nil)
        #expect(owner(" \r\n\t") == nil)
    }

    @Test func onlyCanonicalAddressNamesAreLeases() {
        #expect(LeaseFiles.address(ofEntry: "10.0.0.2") == IPAddress("10.0.0.2"))
        #expect(LeaseFiles.address(ofEntry: "fd00::2") == IPAddress("fd00::2"))
        for name in [
            "fd00:0::2", "FD00::2", "lock", "last_reserved_ip.0", ".pier-lease-index", ".pier-tmp-1-abc",
            "10.0.0.2.tmp",
        ] {
            #expect(LeaseFiles.address(ofEntry: name) == nil, "\(name)")
        }
    }

    @Test func lastReservedMarkerRoundTrips() {
        let address = IPAddress("fd00:7::9")!
        #expect(LeaseFiles.lastReservedName(rangeSet: 1) == "last_reserved_ip.1")
        #expect(LeaseFiles.lastReserved(from: LeaseFiles.lastReservedRecord(address)) == address)
        #expect(LeaseFiles.lastReserved(from: Array("10.0.0.5\n".utf8)) == IPAddress("10.0.0.5"))
        #expect(LeaseFiles.lastReserved(from: Array("garbage".utf8)) == nil)
    }

    @Test func directoryReaderListsWhatTheLeaseStoreWouldSee() throws {
        let dir = try ScratchDirectory()
        try dir.write("net1/10.0.0.3", "c3\r\neth1")
        try dir.write("net1/10.0.0.2", "c2")
        try dir.write("net1/10.0.0.4", "")
        try dir.write("net1/fd00:0::5", "c5\r\neth0")
        try dir.write("net1/lock", "")
        try dir.write("net1/last_reserved_ip.0", "10.0.0.3")
        try dir.write("net1/" + LeaseIndex.fileName, "pier-lease-index 1\n")
        try dir.write("net1/" + FileSystem.temporaryPrefix + "1-x", "c9\r\neth0")
        try dir.write("not-a-network", "x")
        let reader = LeaseDirectory(dataDirectory: dir.path)
        #expect(reader.networks() == ["net1"])
        let leases = reader.leases(network: "net1")
        #expect(leases.map(\.address.description) == ["10.0.0.2", "10.0.0.3"])
        #expect(
            leases.map(\.owner) == [
                LeaseOwner(containerID: "c2", ifname: nil), LeaseOwner(containerID: "c3", ifname: "eth1"),
            ])
        #expect(leases.map(\.path) == [dir.path + "/net1/10.0.0.2", dir.path + "/net1/10.0.0.3"])
        #expect(reader.leases(network: "missing").isEmpty)
    }

    @Test func indexRoundTripsAndRejectsATornWrite() {
        let index = LeaseIndex(
            directory: .init(inode: 3, seconds: 1_700_000_000, nanoseconds: 7),
            entries: ["10.0.0.2": .init(inode: 9, containerID: "c1", ifname: "eth0")])
        let bytes = index.encoded()
        #expect(LeaseIndex(decoding: bytes) == index)
        #expect(LeaseIndex(decoding: Array(bytes.dropLast(3))) == nil)
    }
}
