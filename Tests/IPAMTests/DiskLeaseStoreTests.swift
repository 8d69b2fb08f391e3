import ClusterStore
import Foundation
import IPAddressing
import PierState
import PierTestSupport
import Testing

@testable import IPAM

@Suite struct DiskLeaseStoreTests {
    let dualStack = #""ranges":[[{"subnet":"10.7.0.0/29"}],[{"subnet":"fd00:7::/120"}]]"#

    func diskIPAM(_ dir: TemporaryDirectory, _ body: String? = nil, name: String = "net1", extra: String = "") throws
        -> AddressManager
    {
        let ipamBody = (body ?? dualStack) + #","dataDir":"\#(dir.path)""#
        return try AddressManager(config: config(ipamBody, name: name, extra: extra))
    }

    @Test func layoutIsByteIdenticalToHostLocal() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        let result = try ipam.add(attachment("c1"))
        #expect(result.addressTexts == ["10.7.0.2/29", "fd00:7::2/120"])
        // Everything but Pier's own records is exactly what host-local writes.
        #expect(
            dir.names("net1") == [
                LeaseIndex.fileName, LeaseOwnerLinks.directoryName, "10.7.0.2", "fd00:7::2", "last_reserved_ip.0",
                "last_reserved_ip.0.furthest", "last_reserved_ip.1", "last_reserved_ip.1.furthest", "lock",
            ])
        #expect(dir.bytes("net1/10.7.0.2") == Array("c1\r\neth0".utf8))
        #expect(dir.bytes("net1/fd00:7::2") == Array("c1\r\neth0".utf8))
        #expect(dir.bytes("net1/last_reserved_ip.0") == Array("10.7.0.2".utf8))
        #expect(dir.bytes("net1/last_reserved_ip.1") == Array("fd00:7::2".utf8))
        try ipam.release(attachment("c1"))
        #expect(
            dir.names("net1") == [
                LeaseIndex.fileName, LeaseOwnerLinks.directoryName, "last_reserved_ip.0", "last_reserved_ip.0.furthest",
                "last_reserved_ip.1", "last_reserved_ip.1.furthest", "lock",
            ])
    }

    /// Round-robin hands out addresses nobody ever had until it wraps around: only those are
    /// first-use (the bridge announces every other one). Not first-use: an address requested
    /// after it was released, one reached after wrapping around, and any address of a store
    /// that handed addresses out before it kept the record.
    @Test func firstUseIsOnlyAnAddressNeverHandedOut() throws {
        let dir = try TemporaryDirectory()
        let v4 = #""ranges":[[{"subnet":"10.7.0.0/29"}]],"dataDir":"\#(dir.path)""#
        let ipam = try AddressManager(config: config(v4))
        func add(_ id: String, requesting: [String] = []) throws -> (String, Bool) {
            let manager = requesting.isEmpty ? ipam : try AddressManager(config: config(v4, environmentIPs: requesting))
            let ip = try #require(try manager.add(attachment(id)).ips.first)
            return (ip.address.description, ip.isFirstUse)
        }
        #expect(try add("a") == ("10.7.0.2/29", true))
        try ipam.release(attachment("a"))
        #expect(try add("r", requesting: ["10.7.0.2"]) == ("10.7.0.2/29", false))
        #expect(try add("b") == ("10.7.0.3/29", true))
        #expect(try add("c", requesting: ["10.7.0.5"]) == ("10.7.0.5/29", true))
        #expect(try add("d") == ("10.7.0.6/29", true))
        // Wrapped around: .4 was passed over by the requested .5, so no longer known unused.
        #expect(try add("e") == ("10.7.0.4/29", false))
        try ipam.release(attachment("b"))
        #expect(try add("f") == ("10.7.0.3/29", false))

        // host-local on the same directory moves only the round-robin marker: everything up to
        // it may have been handed out, whatever Pier's own record says.
        let shared = try TemporaryDirectory()
        let sharedV4 = #""ranges":[[{"subnet":"10.7.0.0/29"}]],"dataDir":"\#(shared.path)""#
        let sharedIPAM = try AddressManager(config: config(sharedV4, name: "net1"))
        #expect(try sharedIPAM.add(attachment("p")).ips.map(\.isFirstUse) == [true])  // .2
        try shared.write("net1/10.7.0.4", "h\r\neth0")
        try shared.write("net1/last_reserved_ip.0", "10.7.0.4")  // host-local took .3 and .4
        try shared.write("net1/10.7.0.5", "q\r\neth0")
        try FileManager.default.removeItem(atPath: shared.path + "/net1/10.7.0.4")
        // Beyond Pier's record (.2) but not beyond the marker.
        let sharedRequest = try AddressManager(config: config(sharedV4, name: "net1", environmentIPs: ["10.7.0.4"]))
        #expect(try sharedRequest.add(attachment("t")).ips.map(\.isFirstUse) == [false])
        // Next after the marker: .5 is taken, .6 was never anyone's.
        let next = try #require(try sharedIPAM.add(attachment("s")).ips.first)
        #expect(next.address.description == "10.7.0.6/29" && next.isFirstUse)

        let older = try TemporaryDirectory()
        try older.write("net1/last_reserved_ip.0", "10.7.0.2")
        let olderIPAM = try AddressManager(
            config: config(#""ranges":[[{"subnet":"10.7.0.0/29"}]],"dataDir":"\#(older.path)""#, name: "net1"))
        #expect(try olderIPAM.add(attachment("g")).ips.map(\.isFirstUse) == [false])
        #expect(!older.names("net1").contains(LeaseFiles.furthestHandedOutName(rangeSet: 0)))
    }

    /// The same two ADDs through the real host-local and through us give the same files.
    @Test func matchesTheReferencePluginFileForFile() throws {
        let ours = try TemporaryDirectory()
        let theirs = try TemporaryDirectory()
        let ipam = try diskIPAM(ours)
        for id in ["c1", "c2"] {
            _ = try ipam.add(attachment(id))
            try hostLocal("ADD", dataDir: theirs.path, body: dualStack, id: id)
        }
        let ourFiles = ours.names("net1").filter {
            $0 != LeaseIndex.fileName && $0 != LeaseOwnerLinks.directoryName && !$0.hasSuffix(".furthest")
        }
        #expect(ourFiles == theirs.names("net1"))
        for name in theirs.names("net1") where name != "lock" {
            #expect(ours.bytes("net1/" + name) == theirs.bytes("net1/" + name), "\(name)")
        }
    }

    @Test func readsAHostLocalDirectoryAndDoesNotCollide() throws {
        let dir = try TemporaryDirectory()
        for id in ["go1", "go2", "go3"] { try hostLocal("ADD", dataDir: dir.path, body: dualStack, id: id) }
        let ipam = try diskIPAM(dir)
        let leases = try ipam.leases()
        #expect(leases.count == 6)
        #expect(Set(leases.map(\.containerID)) == ["go1", "go2", "go3"])
        #expect(leases.allSatisfy { $0.ifname == "eth0" })
        try ipam.check(attachment("go2"))
        // Round-robin continues after host-local's marker; no address is handed out twice.
        let ours = try ipam.add(attachment("swift1"))
        #expect(ours.addressTexts == ["10.7.0.5/29", "fd00:7::5/120"])
        try ipam.release(attachment("go2"))
        #expect(try ipam.leases().count == 6)
        // And host-local reads ours: its DEL releases our lease, its next ADD skips ours.
        try hostLocal("DEL", dataDir: dir.path, body: dualStack, id: "swift1")
        #expect(!dir.names("net1").contains("10.7.0.5"))
        try hostLocal("ADD", dataDir: dir.path, body: dualStack, id: "go4")
        #expect(dir.bytes("net1/10.7.0.6") == Array("go4\r\neth0".utf8))
    }

    @Test func legacyIDOnlyFilesAndWhitespaceAreUnderstood() throws {
        let dir = try TemporaryDirectory()
        try dir.write("net1/10.7.0.3", "legacy\n")
        try dir.write("net1/10.7.0.4", "  spaced\r\neth1 \n")
        try dir.write("net1/not-an-ip", "c9\r\neth0")
        try dir.write("net1/010.7.0.5", "c9\r\neth0")
        let ipam = try diskIPAM(dir)
        let leases = try ipam.leases()
        #expect(leases.map(\.description) == ["10.7.0.3 -> legacy/?", "10.7.0.4 -> spaced/eth1"])
        try ipam.check(attachment("legacy", "eth7"))
        #expect(try ipam.add(attachment("new")).addressTexts == ["10.7.0.2/29", "fd00:7::2/120"])
        #expect(try ipam.add(attachment("new2")).addressTexts == ["10.7.0.5/29", "fd00:7::3/120"])
        #expect(try ipam.release(attachment("legacy", "eth0")).map(\.address.description) == ["10.7.0.3"])
        #expect(try ipam.release(attachment("spaced", "eth1")).map(\.address.description) == ["10.7.0.4"])
    }

    @Test func strayTemporaryFilesAreIgnoredAndCleanedUnderTheLock() throws {
        let dir = try TemporaryDirectory()
        let stray = "net1/" + FileSystem.temporaryPrefix + "1234-abc"
        // A writer killed after link(2) leaves its temporary beside the whole lease.
        try dir.write(stray, "dead\r\neth0")
        let ipam = try diskIPAM(dir)
        #expect(try ipam.leases().isEmpty)
        _ = try ipam.add(attachment("c1"))
        #expect(!dir.names("net1").contains { $0.hasPrefix(FileSystem.temporaryPrefix) })
    }

    /// A power loss before an unsynced lease reached the disk (or a host-local killed between
    /// create and write) leaves an empty lease file: the next ADD reclaims the address.
    @Test func emptyLeaseFilesAreReclaimedUnderTheLock() throws {
        let dir = try TemporaryDirectory()
        let narrow = #""ranges":[[{"subnet":"10.7.0.0/30"}]]"#
        try dir.write("net1/10.7.0.2", "")
        let ipam = try diskIPAM(dir, narrow)
        #expect(try ipam.leases().isEmpty)
        // The /30's only address was held by nothing but the empty file.
        #expect(try ipam.add(attachment("c1")).addressTexts == ["10.7.0.2/30"])
        #expect(dir.bytes("net1/10.7.0.2") == Array("c1\r\neth0".utf8))
        // Whitespace only counts as empty too; a listing outside the lock removes nothing.
        try dir.write("net1/10.7.0.9", " \n")
        #expect(try ipam.leases().map(\.containerID) == ["c1"])
        #expect(dir.names("net1").contains("10.7.0.9"))
        try ipam.release(attachment("c1"))
        #expect(!dir.names("net1").contains("10.7.0.9"))
    }

    /// The lease store and the diagnostics reader (`LeaseDirectory`) see the same leases in a
    /// directory holding every odd case either former reader handled its own way.
    @Test func leaseStoreAndDirectoryReaderAgree() throws {
        let dir = try TemporaryDirectory()
        let files = [
            "10.7.0.2": "c2\r\neth0", "10.7.0.3": "", "fd00:7:0::4": "c4\r\neth0", "10.7.0.5": "c5\neth1",
            "10.7.0.6": " c6 \r\n eth0 \n", "fd00:7::7": "legacy", "lock": "", "last_reserved_ip.0": "10.7.0.2",
        ]
        for (name, text) in files { try dir.write("net1/" + name, text) }
        let store = DiskLeaseStore(dataDir: dir.path, network: "net1")
        let stored = try store.leases().map { "\($0.address) \($0.containerID)/\($0.ifname ?? "-")" }.sorted()
        let read = LeaseDirectory(dataDirectory: dir.path).leases(network: "net1").map {
            "\($0.address) \($0.owner.containerID)/\($0.owner.ifname ?? "-")"
        }.sorted()
        #expect(stored == read)
        #expect(read == ["10.7.0.2 c2/eth0", "10.7.0.5 c5\neth1/-", "10.7.0.6 c6 / eth0", "fd00:7::7 legacy/-"])
    }

    @Test func delOnAMissingDirectoryAndGCWork() throws {
        let dir = try TemporaryDirectory()
        let ipam = try diskIPAM(dir)
        #expect(try ipam.release(attachment("nobody")).isEmpty)
        _ = try ipam.add(attachment("a"))
        _ = try ipam.add(attachment("b"))
        let released = try ipam.collectGarbage(keeping: [attachment("b")])
        #expect(Set(released.map(\.containerID)) == ["a"])
        #expect(try ipam.leases().map(\.containerID) == ["b", "b"])
        try ipam.status()
    }

    @Test func statusFailsWhenTheDirectoryIsNotWritable() throws {
        guard geteuid() != 0 else { return }  // root may write anywhere; the check is for users
        let dir = try TemporaryDirectory()
        chmod(dir.path, 0o500)
        defer { chmod(dir.path, 0o700) }
        #expect(throws: IPAMError.self) { try diskIPAM(dir).status() }
    }

    @Test func statusFailsWhenDataDirIsAFile() throws {
        let dir = try TemporaryDirectory()
        try dir.write("file", "x")
        let ipam = try AddressManager(config: config(dualStack + #","dataDir":"\#(dir.path)/file""#))
        #expect(throws: IPAMError.self) { try ipam.add(attachment("c1")) }
        #expect(throws: IPAMError.self) { try ipam.status() }
    }

    /// Separate store instances on separate threads take separate flocks, as processes do.
    @Test func concurrentAllocationsFromThreadsNeverCollide() throws {
        let dir = try TemporaryDirectory()
        let body = #""ranges":[[{"subnet":"10.8.0.0/26"}]],"dataDir":"\#(dir.path)""#
        let outcomes = Outcomes()
        runOnThreads(64) { index in
            do throws(IPAMError) {
                let ipam = try AddressManager(config: config(body))
                outcomes.add(.success(try ipam.add(attachment("t\(index)")).addressTexts[0]))
            } catch {
                outcomes.add(.failure(error))
            }
        }
        let addresses = outcomes.successes
        #expect(addresses.count == 61)
        #expect(Set(addresses).count == 61)
        #expect(outcomes.failures.count == 3)
        #expect(outcomes.failures.allSatisfy { $0.kind == .exhausted })
        #expect(dir.names("testnet").filter { $0.hasPrefix("10.8.0.") }.count == 61)
    }

    /// Runs the reference plugin against `dataDir`, the compatibility oracle.
    func hostLocal(
        _ verb: String, dataDir: String, body: String, id: String, ifname: String = "eth0", args: String? = nil
    ) throws {
        let conf =
            #"{"cniVersion":"1.0.0","name":"net1","type":"host-local","ipam":{"type":"host-local","dataDir":"\#(dataDir)",\#(body)}}"#
        let result = try runCommand(
            ["/usr/lib/cni/host-local"], stdin: conf,
            environment: [
                "CNI_COMMAND": verb, "CNI_CONTAINERID": id, "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": ifname,
                "CNI_PATH": "/usr/lib/cni",
            ].merging(args.map { ["CNI_ARGS": $0] } ?? [:]) { $1 })
        guard result.succeeded else { throw HostLocalFailure(verb: verb, output: result.stdout + result.stderr) }
    }
}

final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<String, IPAMError>] = []
    func add(_ result: Result<String, IPAMError>) { lock.withLock { results.append(result) } }
    var successes: [String] {
        lock.withLock {
            results.compactMap {
                if case .success(let value) = $0 { return value }
                return nil
            }
        }
    }
    var failures: [IPAMError] {
        lock.withLock {
            results.compactMap {
                if case .failure(let error) = $0 { return error }
                return nil
            }
        }
    }
}

func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let done = DispatchGroup()
    for index in 0..<count {
        done.enter()
        Thread {
            body(index)
            done.leave()
        }.start()
    }
    done.wait()
}

struct HostLocalFailure: Error {
    let verb: String
    let output: String
}
