import Foundation
import PierTestSupport
import Testing

/// Invalid configs are refused before anything changes; concurrent first ADDs on one host
/// share one bridge and one VXLAN device.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct ConfigAndRaceTests {
    @Test func invalidConfigsAreCode7AndTouchNothing() throws {
        let cluster = try OverlayCluster(hosts: 1, store: .file)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        let container = try cluster.container("bad-\(uniqueTag(4))")
        let cases: [[String: Any]] = [
            ["vni": 0],
            ["vni": 16_777_216],
            ["port": 0],
            ["mtu": 100],
            ["underlay": "nosuchdev"],
            ["underlay": "192.0.2.77"],
            ["ipam": ["type": "host-local", "subnet": "10.239.1.0/24"]],
            ["ipam": ["type": "ipam", "subnet": "10.239.1.0/24", "store": ["type": "file", "path": "/elsewhere"]]],
        ]
        for extra in cases {
            let output = try network.run(
                "ADD", host: 0, container: container, containerID: "bad", config: network.config(host: 0, extra))
            #expect(output.errorCode == 7, "\(extra): \(output.stdout)")
        }
        // Keys of the wrong JSON type are named; null counts as absent.
        let wrongTypes: [([String: Any], String)] = [
            (["vni": "7"], #"key \"vni\": expected integer, got string"#),
            (["vni": NSNull()], #"key \"vni\": missing"#),
            (["port": 4789.5], #"key \"port\": expected integer, got number"#),
            (["isGateway": "yes"], #"key \"isGateway\": expected boolean, got string"#),
            (["underlay": ["eth0"]], #"key \"underlay\": expected string, got array"#),
            (["store": "file"], #"key \"store\": expected object, got string"#),
            (["store": ["type": "consul"]], #"key \"store.type\": unknown store type \"consul\""#),
            (
                ["store": ["type": "etcd", "endpoints": "http://127.0.0.1:2379"]],
                #"key \"store.endpoints\": expected array"#
            ),
            (
                ["ipam": ["type": "ipam", "subnet": "10.239.1.0/24", "store": ["type": 5]]],
                #"key \"ipam.store.type\": expected string, got number"#
            ),
        ]
        for (extra, message) in wrongTypes {
            let output = try network.run(
                "ADD", host: 0, container: container, containerID: "bad", config: network.config(host: 0, extra))
            #expect(output.errorCode == 7, "\(extra): \(output.stdout)")
            #expect(output.stdout.contains("invalid network config: " + message), "\(extra): \(output.stdout)")
        }
        #expect(try container.linkNames() == ["lo"])
        #expect(try cluster.hosts[0].linkNames().filter { $0.hasPrefix("veth") }.isEmpty)

        // The first ADD fixes the VNI in the store; another VNI under the same name is refused.
        _ = try network.add("ok-\(uniqueTag(4))", host: 0)
        let clash = try network.run(
            "ADD", host: 0, container: container, containerID: "bad",
            config: network.config(host: 0, ["vni": network.vni == 4999 ? 4000 : network.vni + 1]))
        #expect(clash.errorCode == 7)
        #expect(clash.stdout.contains("VNI \(network.vni)"), "\(clash.stdout)")
    }

    @Test func concurrentFirstAddsShareTheDevices() throws {
        let cluster = try OverlayCluster(hosts: 1, store: .file)
        defer { cluster.tearDown() }
        let network = OverlayNetwork(cluster: cluster)
        let keys = (0..<4).map { "race\($0)-\(uniqueTag(4))" }
        for key in keys { _ = try cluster.container(key) }
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: keys.count) { index in
            let outcome = Result { try network.add(keys[index], host: 0) }
            results.append(outcome)
        }
        let addresses = try results.all.map { try $0.get() }
        #expect(Set(addresses).count == keys.count)
        let links = try cluster.hosts[0].linkNames()
        #expect(links.filter { $0 == network.vxlanName || $0 == network.bridgeName }.count == 2)
        #expect(links.filter { $0.hasPrefix("veth") }.count == keys.count)
        let first = try cluster.container(keys[0])
        for address in addresses.dropFirst() { #expect(first.canPing(address)) }
    }
}

final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Result<String, any Error>] = []

    func append(_ value: Result<String, any Error>) {
        lock.lock()
        values.append(value)
        lock.unlock()
    }

    var all: [Result<String, any Error>] {
        lock.lock()
        defer { lock.unlock() }
        return values
    }
}
