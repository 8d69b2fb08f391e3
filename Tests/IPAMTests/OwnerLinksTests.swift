import Foundation
import Glibc
import IPAddressing
import PierState
import Testing

@testable import IPAM

/// ADD and DEL find an attachment's leases through `.pier-owners/` while nobody else writes the
/// lease directory, and fall back to listing it the moment someone has.
@Suite struct OwnerLinksTests {
    let body = #""ranges":[[{"subnet":"10.9.0.0/27"}]]"#

    func diskIPAM(_ dir: TemporaryDirectory, _ ranges: String? = nil) throws -> AddressManager {
        try AddressManager(config: config((ranges ?? body) + #","dataDir":"\#(dir.path)""#, name: "net1"))
    }

    func link(_ dir: TemporaryDirectory, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(dir.path + "/net1/" + LeaseOwnerLinks.directoryName + "/" + name, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func state(_ dir: TemporaryDirectory) -> LeaseOwnerLinks.State? {
        dir.bytes("net1/" + LeaseOwnerLinks.directoryName + "/" + LeaseOwnerLinks.stateName)
            .flatMap(LeaseOwnerLinks.State.init(decoding:))
    }

    /// Writes a lease behind Pier's back and puts the directory's mtime back, as a change within
    /// one tick of a coarse file-system clock would leave it: only the marker can tell.
    func writeUnseen(_ dir: TemporaryDirectory, _ name: String, _ text: String) throws {
        let path = dir.path + "/net1"
        var before = stat()
        #expect(stat(path, &before) == 0)
        try dir.write("net1/" + name, text)
        var times = [before.st_atim, before.st_mtim]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        var after = stat()
        #expect(stat(path, &after) == 0)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
    }

    @Test func stateEncodingRoundTripsAndRejectsDamage() {
        let state = LeaseOwnerLinks.State(
            leaseDirectory: .init(inode: 5, seconds: 1_700_000_000, nanoseconds: 7),
            linkDirectory: .init(inode: 6, seconds: 1_700_000_001, nanoseconds: 0),
            markers: [Array("10.0.0.2".utf8), nil, [], Array("x y\n".utf8)])
        let bytes = state.encoded()
        #expect(LeaseOwnerLinks.State(decoding: bytes) == state)
        #expect(LeaseOwnerLinks.State(decoding: Array(bytes.dropLast())) == nil)
        #expect(LeaseOwnerLinks.State(decoding: Array(bytes.dropLast(7)) + [10]) == nil)
        #expect(LeaseOwnerLinks.State(decoding: Array(bytes.dropLast(4)) + [10]) == nil)
        #expect(LeaseOwnerLinks.State(decoding: Array("c1\r\neth0\n".utf8)) == nil)
        #expect(LeaseOwnerLinks.State(decoding: []) == nil)
        #expect(LeaseOwnerLinks.linkName(containerID: "c1", ifname: "eth0") == "c1:eth0")
        #expect(LeaseOwnerLinks.linkName(containerID: String(repeating: "a", count: 251), ifname: "eth0") == nil)
        #expect(LeaseOwnerLinks.linkName(containerID: "a,b", ifname: "eth0") == nil)
    }

    @Test func linksFollowAddAndDel() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir, #""ranges":[[{"subnet":"10.9.0.0/27"}],[{"subnet":"fd09::/120"}]]"#)
        _ = try ipam.add(attachment("c1"))
        _ = try ipam.add(attachment("c2", "net0"))
        #expect(link(dir, "c1:eth0") == "10.9.0.2,fd09::2")
        #expect(link(dir, "c2:net0") == "10.9.0.3,fd09::3")
        let recorded = try #require(state(dir))
        #expect(recorded.markers == [Array("10.9.0.3".utf8), Array("fd09::3".utf8)])
        #expect(try ipam.release(attachment("c1")).map(\.address) == [ip("10.9.0.2"), ip("fd09::2")])
        #expect(link(dir, "c1:eth0") == nil)
        #expect(state(dir) != nil)
        // The spec's second ADD without DEL is still refused through the link.
        #expect(throws: IPAMError.self) { try ipam.add(attachment("c2", "net0")) }
        #expect(try ipam.leases().map(\.description) == ["10.9.0.3 -> c2/net0", "fd09::3 -> c2/net0"])
    }

    /// While the state holds, ADD and DEL do not list the directory (a lease that appeared with
    /// neither the directory's mtime nor a marker changing is not seen); once a marker changes,
    /// as every writer of a lease changes it, the next ADD or DEL lists and sees it.
    @Test func aChangedMarkerSendsTheSessionBackToAListing() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        _ = try ipam.add(attachment("c1"))
        try writeUnseen(dir, "10.9.0.9", "go1\r\neth0")
        #expect(try ipam.release(attachment("go1")).isEmpty)
        #expect(dir.bytes("net1/10.9.0.9") != nil)
        try dir.write("net1/last_reserved_ip.0", "10.9.0.9")
        #expect(try ipam.release(attachment("go1")).map(\.address) == [ip("10.9.0.9")])
        // The listing rebuilt the links: the next ADD follows on from the marker again.
        #expect(try ipam.add(attachment("c2")).addressTexts == ["10.9.0.10/27"])
        #expect(link(dir, "c2:eth0") == "10.9.0.10")
        #expect(state(dir) != nil)
    }

    /// A process that dies after it began an ADD or DEL leaves the state emptied: the next one lists.
    @Test func anEmptiedStateMeansAListing() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        _ = try ipam.add(attachment("c1"))
        try writeUnseen(dir, "10.9.0.9", "go1\r\neth0")
        let statePath = dir.path + "/net1/" + LeaseOwnerLinks.directoryName + "/" + LeaseOwnerLinks.stateName
        #expect(truncate(statePath, 0) == 0)
        #expect(try ipam.release(attachment("go1")).map(\.address) == [ip("10.9.0.9")])
    }

    /// What a writer killed between create and write leaves (only host-local can) is reclaimed
    /// by the ADD that reaches the address, though ADD lists nothing.
    @Test func anEmptyLeaseIsReclaimedWithoutAListing() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        _ = try ipam.add(attachment("c1"))
        try writeUnseen(dir, "10.9.0.3", "")
        try writeUnseen(dir, "10.9.0.4", "go1\r\neth0")
        #expect(try ipam.add(attachment("c2")).addressTexts == ["10.9.0.3/27"])
        #expect(dir.bytes("net1/10.9.0.3") == Array("c2\r\neth0".utf8))
        #expect(try ipam.add(attachment("c3")).addressTexts == ["10.9.0.5/27"])
        #expect(dir.bytes("net1/10.9.0.4") == Array("go1\r\neth0".utf8))
    }

    /// A link is a hint: DEL and the duplicate check read the lease file before they believe it.
    @Test func aLinkIsCheckedAgainstTheLeaseFile() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        _ = try ipam.add(attachment("c1"))
        _ = try ipam.add(attachment("c2"))
        // Rewritten in place (the directory does not change): the address is someone else's.
        let fd = open(dir.path + "/net1/10.9.0.2", O_WRONLY | O_TRUNC)
        #expect(fd >= 0)
        _ = Array("other\r\neth0".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        #expect(try ipam.release(attachment("c1")).isEmpty)
        #expect(dir.bytes("net1/10.9.0.2") == Array("other\r\neth0".utf8))
        #expect(try ipam.add(attachment("c1")).addressTexts == ["10.9.0.4/27"])
        #expect(link(dir, "c1:eth0") == "10.9.0.4")
    }

    /// The real host-local between Pier's ADDs and DELs: its leases are seen, released by
    /// Pier's DEL, never handed out twice, and a duplicate ADD is refused.
    @Test func hostLocalMixingInIsSeen() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        _ = try ipam.add(attachment("c1"))
        let reference = DiskLeaseStoreTests()
        try reference.hostLocal("ADD", dataDir: dir.path, body: body, id: "go1")
        try reference.hostLocal("ADD", dataDir: dir.path, body: body, id: "go2")
        #expect(throws: IPAMError.self) { try ipam.add(attachment("go1")) }
        #expect(try ipam.add(attachment("c2")).addressTexts == ["10.9.0.5/27"])
        #expect(try ipam.release(attachment("go1")).map(\.address) == [ip("10.9.0.3")])
        try reference.hostLocal("DEL", dataDir: dir.path, body: body, id: "c2")
        try reference.hostLocal("ADD", dataDir: dir.path, body: body, id: "go3", args: "IP=10.9.0.5")
        #expect(try ipam.release(attachment("c2")).isEmpty)
        #expect(try ipam.release(attachment("go3")).map(\.address) == [ip("10.9.0.5")])
        #expect(try ipam.leases().map(\.description) == ["10.9.0.2 -> c1/eth0", "10.9.0.4 -> go2/eth0"])
    }

    @Test func aLegacyLeaseKeepsADDAndDELListing() throws {
        let dir = try TemporaryDirectory()
        try dir.write("net1/10.9.0.7", "legacy")
        let ipam = try diskIPAM(dir)
        _ = try ipam.add(attachment("c1"))
        #expect(state(dir) == nil)
        #expect(try ipam.release(attachment("legacy")).map(\.address) == [ip("10.9.0.7")])
        _ = try ipam.add(attachment("c2"))
        #expect(state(dir) != nil)
        #expect(link(dir, "c1:eth0") == "10.9.0.2")
    }

    /// Separate stores on separate threads (separate flocks, as processes): ADDs and DELs
    /// interleaved never share an address, and the links end up naming exactly what is held.
    @Test func concurrentAddsAndDelsKeepTheLinksComplete() throws {
        let dir = try TemporaryDirectory()
        let body = self.body + #","dataDir":"\#(dir.path)""#
        let outcomes = Outcomes()
        runOnThreads(24) { index in
            do throws(IPAMError) {
                let ipam = try AddressManager(config: config(body, name: "net1"))
                let first = try ipam.add(attachment("t\(index)")).addressTexts[0]
                if index % 2 == 0 {
                    try ipam.release(attachment("t\(index)"))
                    outcomes.add(
                        .success("t\(index)=" + (try ipam.add(attachment("t\(index)", "eth1")).addressTexts[0])))
                } else {
                    outcomes.add(.success("t\(index)=" + first))
                }
            } catch {
                outcomes.add(.failure(error))
            }
        }
        #expect(outcomes.failures.isEmpty)
        let held = outcomes.successes
        #expect(held.count == 24)
        let addresses = held.map { String($0.split(separator: "=")[1].split(separator: "/")[0]) }
        #expect(Set(addresses).count == 24)
        let ipam = try diskIPAM(dir)
        #expect(Set(try ipam.leases().map(\.address.description)) == Set(addresses))
        for entry in held {
            let parts = entry.split(separator: "=")
            let id = String(parts[0])
            let ifname = (Int(id.dropFirst()) ?? 1) % 2 == 0 ? "eth1" : "eth0"
            #expect(link(dir, id + ":" + ifname) == String(parts[1].split(separator: "/")[0]))
            #expect(try ipam.release(attachment(id, ifname)).count == 1)
        }
        #expect(try ipam.leases().isEmpty)
    }
}
