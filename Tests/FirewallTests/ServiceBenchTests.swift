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

    /// `PIER_SERVICE_BENCH_WHOLE_VIP`: services as `pier run --service` makes them (every port
    /// of the VIP, `service_vips_v4`) instead of one port (`service_slots_v4`).
    static let benchPorts: [ServicePort] =
        ProcessInfo.processInfo.environment["PIER_SERVICE_BENCH_WHOLE_VIP"] != nil ? [] : [port]
    static var benchMap: NFTSet { benchPorts.isEmpty ? ServiceRules.vipsV4 : ServiceRules.slotsV4 }
    /// The port clients connect to: the VIP's own port, or with a whole VIP the members'.
    static var benchConnectPort: Int { benchPorts.isEmpty ? 8080 : 80 }

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

    /// Publishes services `bench/s<i>` for every i in `services`, 20 to a commit.
    private static func fill(_ nft: NFTablesClient, services: Range<Int>) throws {
        var index = services.lowerBound
        while index < services.upperBound {
            var batch = Batch()
            for service in index..<min(services.upperBound, index + 20) {
                batch.append(
                    contentsOf: ServiceRules.publishBatch(
                        service: "bench/s\(service)", vip: try vip(service), ports: benchPorts,
                        members: try members(service), affinity: .none))
            }
            try nft.commit(batch)
            index += 20
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
                    service: "bench/s0", vip: try Self.vip(0), ports: Self.benchPorts, members: try Self.members(0))
                try Self.fill(nft, services: 1..<level)
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
                                service: service, vip: vip, ports: Self.benchPorts, members: Array(members.prefix(3)))
                        })
                    addMember.append(
                        try Self.milliseconds {
                            try rules.publish(service: service, vip: vip, ports: Self.benchPorts, members: members)
                        })
                    removeService.append(
                        try Self.milliseconds { try rules.remove(service: service, vip: vip, ports: Self.benchPorts) })
                }
                let entries = try nft.elements(of: Self.benchMap.path).count
                let chains = try nft.chains(family: .inet, table: PierTable.name).count
                #expect(entries == level * ServiceRules.slotsPerPort)
                let json: [String: Any] = [
                    "services": level, "samples": samples, "add_service_ms": addService,
                    "add_member_ms": addMember, "remove_service_ms": removeService,
                    "slot_elements_per_service": Double(entries) / Double(level),
                    "chains_in_table": chains,
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
            // (`publish` made the table and the service chains.)
            // The chain-per-service shape this replaced: a vmap bound to a base chain, with a
            // goto element and a DNAT rule per service.
            let probeMap = NFTSet(
                family: .inet, table: PierTable.name, name: "probe_vmap",
                keyType: [.ipv4Address, .inetProtocol, .inetService], dataType: [.verdict])
            var vmapSetup = Batch()
            vmapSetup.add(probeMap)
            vmapSetup.add(
                Rule(family: .inet, table: PierTable.name, chain: ServiceRules.prerouting.name)
                    .verdictMap([.ipDestination, .l4proto, .transportDestinationPort], map: probeMap.name))
            try nft.commit(vmapSetup)
            var services = Batch()
            for service in 0..<level {
                let chain = Chain(family: .inet, table: PierTable.name, name: "svc\(service)")
                services.add(chain)
                services.add(
                    Rule(family: .inet, table: PierTable.name, chain: chain.name).match(.l4proto, .eq, .inetProtocol(6))
                        .dnat(to: try Self.members(service)[0], port: 8080))
                services.addElements(
                    [
                        SetElement(
                            key: SlotTarget.port(try Self.vip(service), Self.port).key, verdict: .goto(chain.name))
                    ],
                    to: probeMap.path)
                if services.count > 120 {
                    try nft.commit(services)
                    services = Batch()
                }
            }
            if !services.isEmpty { try nft.commit(services) }
            var results: [String: [Double]] = [:]
            for sample in 0..<10 {
                let chain = Chain(family: .inet, table: PierTable.name, name: "probe\(sample)")
                var emptyChain = Batch()
                emptyChain.add(chain)
                results["empty chain", default: []].append(try Self.milliseconds { try nft.commit(emptyChain) })
                var gotoElement = Batch()
                gotoElement.addElements(
                    [
                        SetElement(
                            key: SlotTarget.port(try Self.vip(level + sample), Self.port).key,
                            verdict: .goto(chain.name))
                    ],
                    to: probeMap.path)
                results["goto element", default: []].append(try Self.milliseconds { try nft.commit(gotoElement) })
                let natChain = Chain(family: .inet, table: PierTable.name, name: "probenat\(sample)")
                var natRule = Batch()
                natRule.add(natChain)
                natRule.add(
                    Rule(family: .inet, table: PierTable.name, chain: natChain.name).match(
                        .l4proto, .eq, .inetProtocol(6)
                    )
                    .dnat(to: try Self.members(1)[0], port: 8080))
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

    /// First-packet cost: TCP connects from a client namespace to a VIP through a router
    /// namespace holding `level` services (`PIER_SERVICE_CONNECT_BENCH=10,10000`). The member
    /// namespace holds the 3 member addresses and accepts in a tight loop; the client times each
    /// `connect()` (the handshake through DNAT) in one Python process. Prints one
    /// `SERVICECONNECT {json}` line per level.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PIER_SERVICE_CONNECT_BENCH"] != nil))
    func connectLatencyToAVIP() throws {
        let levels = (ProcessInfo.processInfo.environment["PIER_SERVICE_CONNECT_BENCH"] ?? "")
            .split(separator: ",").compactMap { Int($0) }
        for level in levels {
            try withTestHosts(3) { hosts in
                let (client, router, member) = (hosts[0], hosts[1], hosts[2])
                try router.mustRun(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
                try connect(client, "e0", to: router, "r0")
                try connect(member, "e0", to: router, "r1")
                try client.mustRun(["ip", "addr", "add", "10.98.0.2/24", "dev", "e0"])
                try client.mustRun(["ip", "route", "add", "default", "via", "10.98.0.1"])
                try router.mustRun(["ip", "addr", "add", "10.98.0.1/24", "dev", "r0"])
                try router.mustRun(["ip", "addr", "add", "10.99.0.1/24", "dev", "r1"])
                for address in 2...4 {
                    try member.mustRun(["ip", "addr", "add", "10.99.0.\(address)/24", "dev", "e0"])
                }
                try member.mustRun(["ip", "route", "add", "default", "via", "10.99.0.1"])
                let server = try BackgroundProgram(
                    in: member,
                    [
                        "python3", "-c",
                        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                            + "s.bind(('0.0.0.0',8080))\ns.listen(512)\nwhile True:\n c,_=s.accept()\n c.close()\n",
                    ])
                defer { server.stop() }
                try waitForListener(in: member, port: 8080)
                let nft = try NFTablesClient(namespace: NetworkNamespace.open(path: router.path))
                let members = try (2...4).map { try #require(IPAddress("10.99.0.\($0)")) }
                let vip = try Self.vip(level)
                try ServiceRules(client: nft).publish(
                    service: "bench/target", vip: vip, ports: Self.benchPorts, members: members)
                try Self.fill(nft, services: 0..<level)
                let script = """
                    import socket, time, json
                    lat = []
                    for i in range(1000):
                        t = time.perf_counter()
                        s = socket.create_connection(("\(vip)", \(Self.benchConnectPort)), timeout=2)
                        lat.append((time.perf_counter() - t) * 1e6)
                        s.close()
                    print(json.dumps(lat))
                    """
                let result = try client.run(["python3", "-c", script], timeout: 120)
                let samples = try #require(
                    try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [Double], "\(result.stderr)")
                let json: [String: Any] = ["services": level, "connect_us": samples]
                let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
                print("SERVICECONNECT " + String(decoding: data, as: UTF8.self))
            }
        }
    }
}
