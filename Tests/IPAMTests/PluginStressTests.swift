import Foundation
import Glibc
import PierState
import PierTestSupport
import Testing

@testable import IPAM

/// A plugin process started without waiting, so tests can race many or kill one mid-flight.
final class PluginProcess {
    let process = Process()
    private let stdout = Pipe()

    /// `executable`: another IPAM plugin than Pier's (the reference host-local).
    init(_ verb: String, config: String, id: String, ifname: String = "eth0", executable: String? = nil) throws {
        process.executableURL = URL(
            fileURLWithPath: executable ?? PierTestSupport.PluginRunner("ipam").pluginDirectory + "/ipam")
        process.environment = [
            "CNI_COMMAND": verb, "CNI_CONTAINERID": id, "CNI_NETNS": PluginEndToEndTests.netns, "CNI_IFNAME": ifname,
            "CNI_PATH": "/usr/lib/cni",
        ]
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Small enough for the pipe buffer, so writing never blocks on a killed child.
        try? stdin.fileHandleForWriting.write(contentsOf: Data(config.utf8))
        try? stdin.fileHandleForWriting.close()
    }

    /// Waits for exit; stdout as JSON, and whether a signal ended it.
    func finish() -> (status: Int32, killed: Bool, object: [String: Any]) {
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal, object)
    }
}

@Suite(.serialized) struct PluginStressTests {
    /// 64 ADDs from 64 processes at once on a /26: 61 usable addresses (64 − network −
    /// broadcast − gateway), so exactly 61 distinct successes and 3 clean exhaustion errors.
    @Test func sixtyFourProcessesOnASlash26() throws {
        let dir = try TemporaryDirectory()
        let config = PluginEndToEndTests.conf(dir, #""ranges":[[{"subnet":"10.50.0.0/26"}]]"#)
        let processes = try (0..<64).map { try PluginProcess("ADD", config: config, id: "p\($0)") }
        let outcomes = processes.map { $0.finish() }
        let addresses = outcomes.filter { $0.status == 0 }.compactMap {
            ($0.object["ips"] as? [[String: Any]])?.first?["address"] as? String
        }
        let failures = outcomes.filter { $0.status != 0 }
        #expect(addresses.count == 61)
        #expect(Set(addresses).count == 61)
        #expect(failures.count == 3)
        for failure in failures {
            #expect(failure.object["code"] as? Int == 11)
            #expect((failure.object["msg"] as? String)?.contains("no IP addresses available in range set") == true)
        }
        // Every lease on disk is whole and matches one reported address.
        let leases = PluginEndToEndTests.leaseNames(dir)
        #expect(Set(leases.map { $0 + "/26" }) == Set(addresses))
        for name in leases {
            let text = String(decoding: dir.bytes("e2enet/" + name) ?? [], as: UTF8.self)
            #expect(text.range(of: #"^p[0-9]+\r\neth0$"#, options: .regularExpression) != nil, "\(name): \(text)")
        }
    }

    /// Pier's ipam and the reference host-local, 32 processes each, racing ADD on one /26 in one
    /// directory (both take its flock): 61 distinct addresses between them and 3 exhaustion
    /// errors. Pier then sees host-local's leases although its owner links never named them: a
    /// Pier ADD of an attachment host-local serves is refused, and Pier's DEL releases them.
    @Test func pierAndHostLocalRacingInOneDirectory() throws {
        let dir = try TemporaryDirectory()
        let config = PluginEndToEndTests.conf(dir, #""ranges":[[{"subnet":"10.51.0.0/26"}]]"#, version: "1.0.0")
        let ids = (0..<64).map { ($0 % 2 == 0 ? "p" : "g") + String($0) }
        let processes = try ids.map {
            try PluginProcess(
                "ADD", config: config, id: $0, executable: $0.hasPrefix("g") ? "/usr/lib/cni/host-local" : nil)
        }
        let outcomes = processes.map { $0.finish() }
        var holders: [String: String] = [:]
        for (id, outcome) in zip(ids, outcomes) where outcome.status == 0 {
            holders[id] = (outcome.object["ips"] as? [[String: Any]])?.first?["address"] as? String
        }
        #expect(holders.count == 61)
        #expect(Set(holders.values).count == 61)
        #expect(holders.keys.contains { $0.hasPrefix("g") } && holders.keys.contains { $0.hasPrefix("p") })
        let leases = PluginEndToEndTests.leaseNames(dir)
        #expect(Set(leases.map { $0 + "/26" }) == Set(holders.values))
        for name in leases {
            let text = String(decoding: dir.bytes("e2enet/" + name) ?? [], as: UTF8.self)
            #expect(text.range(of: #"^[pg][0-9]+\r\neth0$"#, options: .regularExpression) != nil, "\(name): \(text)")
        }
        let hostLocalHolder = try #require(holders.keys.first { $0.hasPrefix("g") })
        #expect(try PluginProcess("ADD", config: config, id: hostLocalHolder).finish().status != 0)
        for id in holders.keys.sorted() {
            #expect(try PluginProcess("DEL", config: config, id: id).finish().status == 0, "DEL \(id)")
        }
        #expect(PluginEndToEndTests.leaseNames(dir).isEmpty, "left behind: \(PluginEndToEndTests.leaseNames(dir))")
    }

    /// ADD and DEL killed with SIGKILL at random moments, 200 times: no lease is ever partial,
    /// and a DEL that runs to completion always releases everything the attachment held.
    @Test func sigkillNeverLeavesAPartialOrUnreleasableLease() throws {
        let dir = try TemporaryDirectory()
        let config = PluginEndToEndTests.conf(
            dir, #""ranges":[[{"subnet":"10.51.0.0/24"}],[{"subnet":"fd51::/120"}]]"#)
        // Calibrate on a normal ADD, then kill anywhere from exec to a little after it would end,
        // so kills land before, during and after the reservation.
        var durations: [Double] = []
        for index in 0..<3 {
            let start = Date()
            _ = try PluginProcess("ADD", config: config, id: "calibrate\(index)").finish()
            durations.append(Date().timeIntervalSince(start))
            _ = try PluginProcess("DEL", config: config, id: "calibrate\(index)").finish()
        }
        // The window adapts as the run goes (a loaded machine makes plugins slower or faster
        // than the calibration saw): shrink it after an ADD that finished, widen it after a kill.
        var window = max(durations.sorted()[1] * 1.2, 0.005)

        // How many lease files each killed ADD left: 0 (killed before), 1 (between the v4
        // and v6 reservation), 2 (after both).
        var leftByKilledAdds = [0, 0, 0]
        var completedAdds = 0
        var killedDels = 0
        for cycle in 0..<200 {
            let id = "k\(cycle)"
            let add = try PluginProcess("ADD", config: config, id: id)
            usleep(UInt32(Double.random(in: 0...window) * 1_000_000))
            kill(add.process.processIdentifier, SIGKILL)
            if add.finish().killed {
                leftByKilledAdds[min(held(by: id, in: dir).count, 2)] += 1
                window = min(window * 1.05, 1)
            } else {
                completedAdds += 1
                window = max(window * 0.8, 0.001)
            }
            try expectOnlyWholeLeases(dir)

            if Bool.random() {
                let del = try PluginProcess("DEL", config: config, id: id)
                usleep(UInt32(Double.random(in: 0...window) * 1_000_000))
                kill(del.process.processIdentifier, SIGKILL)
                if del.finish().killed { killedDels += 1 }
                try expectOnlyWholeLeases(dir)
            }

            let del = try PluginProcess("DEL", config: config, id: id).finish()
            #expect(del.status == 0, "DEL \(id): \(del.object)")
            #expect(held(by: id, in: dir).isEmpty, "\(id) still holds \(held(by: id, in: dir))")
        }
        #expect(PluginEndToEndTests.leaseNames(dir).isEmpty, "left behind: \(PluginEndToEndTests.leaseNames(dir))")
        // The kills must actually have landed at every stage for the test to mean anything.
        let killed = leftByKilledAdds.reduce(0, +)
        #expect(killed > 50, "only \(killed) ADDs were killed mid-run")
        print(
            "SIGKILL: \(completedAdds) ADDs completed; \(killed) killed, leaving 0/1/2 leases: \(leftByKilledAdds); \(killedDels) DELs killed"
        )
    }

    func held(by id: String, in dir: TemporaryDirectory) -> [String] {
        PluginEndToEndTests.leaseNames(dir).filter {
            !$0.hasPrefix(".pier-tmp-")
                && String(decoding: dir.bytes("e2enet/" + $0) ?? [], as: UTF8.self).hasPrefix(id + "\r\n")
        }
    }

    /// Every address file holds a whole record; temporaries may exist only as dead writers' debris.
    func expectOnlyWholeLeases(_ dir: TemporaryDirectory) throws {
        for name in dir.names("e2enet")
        where name != "lock" && name != LeaseIndex.fileName && name != LeaseOwnerLinks.directoryName {
            let text = String(decoding: dir.bytes("e2enet/" + name) ?? [], as: UTF8.self)
            if name.hasPrefix("last_reserved_ip.") || name.hasPrefix(".pier-tmp-") { continue }
            #expect(
                text.range(of: #"^k[0-9]+\r\neth0$"#, options: .regularExpression) != nil,
                "partial lease \(name): \(text.debugDescription)")
        }
    }
}
