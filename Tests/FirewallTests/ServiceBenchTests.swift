import Firewall
import Foundation
import IPAddressing
import NetNS
import PierTestSupport
import Testing

@testable import PierTables

/// The measurement behind `bench/services.py`, run only when `PIER_SERVICE_BENCH` names the
/// levels (`10,1000,10000`): in a fresh test host, fill `inet pier` with that many services
/// (3 members each, in batches of 40), then time `ServiceRules.publish` adding one more
/// service and adding one member to it, and `remove`, through the same API a runtime uses.
/// Prints one `SERVICEBENCH {json}` line per level.
@Suite(
    .enabled(if: isRoot),
    .timeLimit(.minutes(30)))
struct ServiceBenchTests {
    private static let port = ServicePort(ipProtocol: .tcp, port: 80, targetPort: 8080)

    /// VIPs in 10.96.0.0/16 by index; members in 10.97.0.0/16.
    private static func vip(_ index: Int) throws -> IPAddress {
        try #require(IPAddress(bytes: [10, 96, UInt8(index / 250 % 256), UInt8(index % 250 + 1)]))
    }

    private static func members(_ index: Int, count: Int = 3) throws -> [IPAddress] {
        try (0..<count).map { member in
            let n = index * 4 + member
            return try #require(IPAddress(bytes: [10, 97, UInt8(n / 250 % 250), UInt8(n % 250 + 1)]))
        }
    }

    private static func milliseconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["PIER_SERVICE_BENCH"] != nil))
    func addOneServiceAndOneMemberAtSeveralNumbersOfServices() throws {
        let levels = (ProcessInfo.processInfo.environment["PIER_SERVICE_BENCH"] ?? "")
            .split(separator: ",").compactMap { Int($0) }
        let samples = Int(ProcessInfo.processInfo.environment["PIER_SERVICE_BENCH_SAMPLES"] ?? "") ?? 20
        for level in levels {
            try withTestHosts(1) { hosts in
                let nft = try NFTablesClient(namespace: NetworkNamespace.open(path: hosts[0].path))
                let rules = ServiceRules(client: nft)
                try rules.publish(
                    service: "bench/s0", vip: try Self.vip(0), ports: [Self.port], members: try Self.members(0))
                var index = 1
                while index < level {
                    var batch = Batch()
                    for service in index..<min(level, index + 40) {
                        batch.append(
                            contentsOf: ServiceRules.publishBatch(
                                service: "bench/s\(service)", vip: try Self.vip(service), ports: [Self.port],
                                members: try Self.members(service), affinity: .none))
                    }
                    try nft.commit(batch)
                    index += 40
                }
                var addService: [Double] = []
                var addMember: [Double] = []
                var removeService: [Double] = []
                for sample in 0..<samples {
                    let service = "bench/new\(sample)"
                    let vip = try Self.vip(level + sample)
                    let members = try Self.members(level + sample, count: 4)
                    addService.append(
                        try Self.milliseconds {
                            try rules.publish(
                                service: service, vip: vip, ports: [Self.port], members: Array(members.prefix(3)))
                        })
                    addMember.append(
                        try Self.milliseconds {
                            try rules.publish(service: service, vip: vip, ports: [Self.port], members: members)
                        })
                    removeService.append(
                        try Self.milliseconds { try rules.remove(service: service, vip: vip, ports: [Self.port]) })
                }
                let entries = try nft.elements(of: ServiceRules.mapV4.path).count
                let chains = try nft.chains(family: .inet, table: PierTable.name).filter { $0.name.hasPrefix("svc-") }
                #expect(entries == level && chains.count == level)
                let json: [String: Any] = [
                    "services": level, "samples": samples, "add_service_ms": addService,
                    "add_member_ms": addMember, "remove_service_ms": removeService,
                    "vmap_elements_per_service": Double(entries) / Double(level),
                    "chains_per_service": Double(chains.count) / Double(level),
                ]
                let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
                print("SERVICEBENCH " + String(decoding: data, as: UTF8.self))
            }
        }
    }

    /// Which kernel operation makes a commit grow with the number of services (a probe for the
    /// design, run only with `PIER_SERVICE_PROBE=<services>`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PIER_SERVICE_PROBE"] != nil))
    func whichCommitGrowsWithServices() throws {
        let level = Int(ProcessInfo.processInfo.environment["PIER_SERVICE_PROBE"] ?? "") ?? 10
        try withTestHosts(1) { hosts in
            let nft = try NFTablesClient(namespace: NetworkNamespace.open(path: hosts[0].path))
            let rules = ServiceRules(client: nft)
            try rules.publish(
                service: "bench/s0", vip: try Self.vip(0), ports: [Self.port], members: try Self.members(0))
            var index = 1
            while index < level {
                var batch = Batch()
                for service in index..<min(level, index + 40) {
                    batch.append(
                        contentsOf: ServiceRules.publishBatch(
                            service: "bench/s\(service)", vip: try Self.vip(service), ports: [Self.port],
                            members: try Self.members(service), affinity: .none))
                }
                try nft.commit(batch)
                index += 40
            }
            var results: [String: [Double]] = [:]
            for sample in 0..<10 {
                let chain = Chain(family: .inet, table: PierTable.name, name: "probe\(sample)")
                var emptyChain = Batch()
                emptyChain.add(chain)
                results["empty chain", default: []].append(try Self.milliseconds { try nft.commit(emptyChain) })
                var gotoElement = Batch()
                gotoElement.addElements(
                    [SetElement(key: Self.port.key(try Self.vip(level + sample)), verdict: .goto(chain.name))],
                    to: ServiceRules.mapV4.path)
                results["goto element", default: []].append(try Self.milliseconds { try nft.commit(gotoElement) })
                let natChain = Chain(family: .inet, table: PierTable.name, name: "probenat\(sample)")
                var natRule = Batch()
                natRule.add(natChain)
                natRule.add(
                    ServiceRules.rule(
                        in: natChain, service: "p", port: Self.port, members: try Self.members(1), affinity: .none))
                results["nat rule, unreferenced chain", default: []].append(
                    try Self.milliseconds { try nft.commit(natRule) })
                var plainRule = Batch()
                let plainChain = Chain(family: .inet, table: PierTable.name, name: "probeplain\(sample)")
                plainRule.add(plainChain)
                plainRule.add(
                    Rule(family: .inet, table: PierTable.name, chain: plainChain.name).match(
                        .l4proto, .eq, .inetProtocol(6)
                    ).counter())
                results["counter rule", default: []].append(try Self.milliseconds { try nft.commit(plainRule) })
                var hairpin = Batch()
                let address = try Self.members(level + sample)[0]
                hairpin.addElements(
                    [SetElement(key: [.address(address), .address(address)])], to: ServiceRules.hairpinV4.path)
                results["data element", default: []].append(try Self.milliseconds { try nft.commit(hairpin) })
            }
            for (name, values) in results.sorted(by: { $0.key < $1.key }) {
                print("PROBE \(level) \(name): median \(values.sorted()[values.count / 2]) ms")
            }
        }
    }

    /// The elements-only alternative (design.md, Services): one fixed rule per family,
    /// `dnat ip to ip daddr . meta l4proto . th dport . numgen random mod K map @slots`, and K
    /// slot elements per service port. Adding a service is K element adds, adding a member
    /// rewrites the K slots; no rule and no jump is ever added. Times both at `level` services
    /// (`PIER_SERVICE_SLOTS_PROBE=<services>`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PIER_SERVICE_SLOTS_PROBE"] != nil))
    func elementsOnlySlotMapCosts() throws {
        let level = Int(ProcessInfo.processInfo.environment["PIER_SERVICE_SLOTS_PROBE"] ?? "") ?? 10
        let slots = 60
        try withTestHosts(1) { hosts in
            let nft = try NFTablesClient(namespace: NetworkNamespace.open(path: hosts[0].path))
            let map = ServiceSlotsProbe.map
            var setup = Batch()
            setup.add(PierTable.table)
            setup.add(map)
            setup.add(ServiceRules.prerouting)
            setup.add(ServiceSlotsProbe.rule(slots: slots))
            try nft.commit(setup)
            func slotElements(_ service: Int, members: [IPAddress], delete: Bool = false) throws -> [SetElement] {
                let vip = try Self.vip(service)
                return (0..<slots).map { slot in
                    SetElement(
                        key: Self.port.key(vip) + [.mark(UInt32(slot))],
                        data: delete ? nil : [.address(members[slot % members.count]), .port(Self.port.targetPort)])
                }
            }
            var index = 0
            while index < level {
                var batch = Batch()
                for service in index..<min(level, index + 20) {
                    batch.addElements(try slotElements(service, members: try Self.members(service)), to: map.path)
                }
                try nft.commit(batch)
                index += 20
            }
            var addService: [Double] = []
            var addMember: [Double] = []
            for sample in 0..<10 {
                let members = try Self.members(level + sample, count: 4)
                var add = Batch()
                add.addElements(try slotElements(level + sample, members: Array(members.prefix(3))), to: map.path)
                addService.append(try Self.milliseconds { try nft.commit(add) })
                var rewrite = Batch()
                rewrite.deleteElements(try slotElements(level + sample, members: members, delete: true), from: map.path)
                rewrite.addElements(try slotElements(level + sample, members: members), to: map.path)
                addMember.append(try Self.milliseconds { try nft.commit(rewrite) })
            }
            print("SLOTS \(level) add service: median \(addService.sorted()[5]) ms")
            print("SLOTS \(level) add member: median \(addMember.sorted()[5]) ms")
        }
    }
}

/// The slot map of `elementsOnlySlotMapCosts` (IPv4 only).
enum ServiceSlotsProbe {
    static let map = NFTSet(
        family: .inet, table: PierTable.name, name: "service_slots_v4",
        keyType: [.ipv4Address, .inetProtocol, .inetService, .integer], dataType: [.ipv4Address, .inetService])

    static func rule(slots: Int) -> Rule {
        Rule(
            family: .inet, table: PierTable.name, chain: ServiceRules.prerouting.name,
            expressions: [
                .meta(.nfproto, into: .r1), .cmp(.eq, .r1, [2]),
                .payload(.network, offset: 16, length: 4, into: .r1),
                .meta(.l4proto, into: .r32(1)),
                .payload(.transport, offset: 2, length: 2, into: .r32(2)),
                .numgen(.random, modulus: UInt32(slots), into: .r32(3)),
                .lookup(.named(map.name), source: .r1, destination: .r1),
                .nat(.dnat, family: .ipv4, address: .r1, port: .r32(1)),
            ], comment: "probe:slots")
    }
}
