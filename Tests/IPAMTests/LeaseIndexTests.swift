import ClusterStore
import Foundation
import Glibc
import IPAddressing
import PierState
import Testing

@testable import IPAM

@Suite struct LeaseIndexTests {
    let body = #""ranges":[[{"subnet":"10.9.0.0/28"}]]"#

    func diskIPAM(_ dir: TemporaryDirectory) throws -> AddressManager {
        try AddressManager(config: config(body + #","dataDir":"\#(dir.path)""#, name: "net1"))
    }

    func savedIndex(_ dir: TemporaryDirectory) -> LeaseIndex? {
        dir.bytes("net1/" + LeaseIndex.fileName).flatMap(LeaseIndex.init(decoding:))
    }

    func inode(_ path: String) -> UInt64 {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_ino) : 0
    }

    /// Rewrites a file's bytes in place: same inode, and the directory does not change.
    func overwriteInPlace(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    @Test func encodingRoundTripsAndRejectsDamage() throws {
        let index = LeaseIndex(
            directory: .init(inode: 7, seconds: 1_700_000_000, nanoseconds: 42),
            entries: [
                "10.0.0.2": .init(inode: 11, containerID: "c1", ifname: "eth0"),
                "fd00::2": .init(inode: 12, containerID: "legacy", ifname: nil),
            ])
        let bytes = index.encoded()
        #expect(LeaseIndex(decoding: bytes) == index)
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix(LeaseIndex.header + "\n"))
        #expect(LeaseIndex(decoding: Array(bytes.dropLast(5))) == nil)
        #expect(LeaseIndex(decoding: bytes + Array("10.0.0.9 1 x\n".utf8)) == nil)
        var flipped = bytes
        flipped[25] ^= 1
        #expect(LeaseIndex(decoding: flipped) == nil)
        #expect(LeaseIndex(decoding: []) == nil)
        #expect(LeaseIndex(decoding: Array("garbage\r\nmore\n".utf8)) == nil)
        #expect(!LeaseIndex.canStore(.init(inode: 1, containerID: "a b", ifname: nil)))
        #expect(!LeaseIndex.canStore(.init(inode: 1, containerID: "a", ifname: "")))
    }

    @Test func indexIsWrittenAndListingsUseIt() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        for id in ["c1", "c2", "c3"] { _ = try ipam.add(attachment(id)) }
        // ADD and DEL go through the owner links; a CHECK lists the directory under the lock.
        try ipam.check(attachment("c1"))
        let index = try #require(savedIndex(dir))
        #expect(index.entries.count == 3)
        #expect(
            index.entries["10.9.0.3"]
                == .init(inode: inode(dir.path + "/net1/10.9.0.3"), containerID: "c2", ifname: "eth0"))
        // Change a lease's bytes behind the index without touching the directory: a listing
        // that trusts the index still reports the indexed owner, so the file was not read.
        overwriteInPlace(dir.path + "/net1/10.9.0.3", "someone\r\neth9")
        #expect(try ipam.leases().first { $0.address == ip("10.9.0.3") }?.containerID == "c2")
        // DEL believes the lease file itself, not the index: the address is someone else's now.
        #expect(try ipam.release(attachment("c2")).isEmpty)
        #expect(dir.bytes("net1/10.9.0.3") == Array("someone\r\neth9".utf8))
        #expect(try ipam.release(attachment("c3")).map(\.address) == [ip("10.9.0.4")])
        try ipam.check(attachment("c1"))
        #expect(savedIndex(dir)?.entries.keys.sorted() == ["10.9.0.2", "10.9.0.3"])
    }

    /// host-local shares the directory and knows nothing of the index: whatever it adds,
    /// removes or replaces is seen by the next listing.
    @Test func changesBehindTheIndexAreSeen() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        for id in ["c1", "c2", "c3"] { _ = try ipam.add(attachment(id)) }
        // Added, removed, and removed then created again under the same name (ext4 tends to
        // hand the freed inode to the new file, so the inode alone cannot tell).
        try dir.write("net1/10.9.0.9", "go1\r\neth0")
        try FileManager.default.removeItem(atPath: dir.path + "/net1/10.9.0.2")
        try FileManager.default.removeItem(atPath: dir.path + "/net1/10.9.0.3")
        try dir.write("net1/10.9.0.3", "go2\r\neth0")
        let leases = try ipam.leases()
        #expect(leases.map(\.description) == ["10.9.0.3 -> go2/eth0", "10.9.0.4 -> c3/eth0", "10.9.0.9 -> go1/eth0"])
        // DEL of the old owner must not take the new owner's lease.
        #expect(try ipam.release(attachment("c2")).isEmpty)
        #expect(dir.bytes("net1/10.9.0.3") == Array("go2\r\neth0".utf8))
        // The next session rebuilt the index from the files.
        #expect(savedIndex(dir)?.entries["10.9.0.3"]?.containerID == "go2")
        #expect(savedIndex(dir)?.entries["10.9.0.9"]?.containerID == "go1")
    }

    @Test(arguments: ["missing", "garbage", "truncated", "directory"])
    func aBadIndexIsIgnoredAndRebuilt(damage: String) throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        for id in ["c1", "c2"] { _ = try ipam.add(attachment(id)) }
        let path = dir.path + "/net1/" + LeaseIndex.fileName
        let good = try #require(dir.bytes("net1/" + LeaseIndex.fileName))
        switch damage {
        case "missing": try FileManager.default.removeItem(atPath: path)
        case "garbage": overwriteInPlace(path, "c1\r\neth0")
        case "truncated": overwriteInPlace(path, String(decoding: good.prefix(good.count / 2), as: UTF8.self))
        default:
            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        }
        // A fresh store (another process) has no index in memory.
        let other = try diskIPAM(dir)
        #expect(try other.leases().map(\.description) == ["10.9.0.2 -> c1/eth0", "10.9.0.3 -> c2/eth0"])
        #expect(try other.add(attachment("c3")).addressTexts == ["10.9.0.4/28"])
        #expect(try other.release(attachment("c1")).map(\.address) == [ip("10.9.0.2")])
        // The index is written by listings under the lock (ADD and DEL read the owner links).
        try other.check(attachment("c2"))
        if damage != "directory" {
            #expect(savedIndex(dir)?.entries.keys.sorted() == ["10.9.0.3", "10.9.0.4"])
        }
        #expect(try ipam.leases().map(\.containerID) == ["c2", "c3"])
    }

    /// The real host-local in the same directory as our index: it ignores the index, and a
    /// lease it frees and hands to another container at once is seen with its new owner.
    @Test func hostLocalReusingAnAddressIsSeen() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        _ = try ipam.add(attachment("c1"))
        _ = try ipam.add(attachment("c2"))
        let store = DiskLeaseStoreTests()
        try store.hostLocal("DEL", dataDir: dir.path, body: body, id: "c1")
        try store.hostLocal("ADD", dataDir: dir.path, body: body, id: "go1", args: "IP=10.9.0.2")
        try store.hostLocal("ADD", dataDir: dir.path, body: body, id: "go2")
        #expect(
            try ipam.leases().map(\.description) == [
                "10.9.0.2 -> go1/eth0", "10.9.0.3 -> c2/eth0", "10.9.0.4 -> go2/eth0",
            ])
        #expect(try ipam.release(attachment("c1")).isEmpty)
        #expect(dir.bytes("net1/10.9.0.2") == Array("go1\r\neth0".utf8))
        // And host-local's DEL of our container still works beside the index.
        try store.hostLocal("DEL", dataDir: dir.path, body: body, id: "c2")
        #expect(try ipam.leases().map(\.containerID) == ["go1", "go2"])
        #expect(dir.names("net1").contains(LeaseIndex.fileName))
    }

    @Test func legacyAndUnstorableOwnersAreReadFromTheirFiles() throws {
        let dir = try TemporaryDirectory()
        try dir.write("net1/10.9.0.5", "legacy")
        try dir.write("net1/10.9.0.6", "two words")
        let ipam = try diskIPAM(dir)
        _ = try ipam.add(attachment("c1"))
        let index = try #require(savedIndex(dir))
        #expect(index.entries["10.9.0.5"]?.ifname == nil)
        #expect(index.entries["10.9.0.5"]?.containerID == "legacy")
        #expect(index.entries["10.9.0.6"] == nil)
        #expect(
            try diskIPAM(dir).leases().map(\.description) == [
                "10.9.0.2 -> c1/eth0", "10.9.0.5 -> legacy/?", "10.9.0.6 -> two words/?",
            ])
    }
}
