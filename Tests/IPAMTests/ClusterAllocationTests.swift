import ClusterStore
import Foundation
import Testing

@testable import IPAM

@Suite struct ClusterAllocationTests {
    func hostIPAM(_ store: TemporaryDirectory, host: String, subnet: String = "10.9.0.0/27") throws -> AddressManager {
        try AddressManager(
            config: config(
                #""ranges":[[{"subnet":"\#(subnet)"}]],"store":{"type":"file","path":"\#(store.path)","host":"\#(host)"}"#
            ))
    }

    @Test func twoHostsNeverShareAnAddress() throws {
        let store = try TemporaryDirectory()
        let a = try hostIPAM(store, host: "node-a")
        let b = try hostIPAM(store, host: "node-b")
        let fromA = try a.add(attachment("a1")).addressTexts
        let fromB = try b.add(attachment("b1")).addressTexts
        #expect(fromA == ["10.9.0.2/27"])
        #expect(fromB == ["10.9.0.3/27"])
        let leases = try a.leases()
        #expect(leases.map(\.host) == ["node-a", "node-b"])
        // The same container ID on another host is a different owner: DEL on A leaves B alone.
        _ = try b.add(attachment("a1"))
        #expect(try a.release(attachment("a1")).map(\.host) == ["node-a"])
        #expect(try b.leases().count == 2)
        try b.check(attachment("a1"))
        #expect(throws: IPAMError.self) { try a.check(attachment("a1")) }
        // GC on A with an empty valid list never touches B's leases.
        _ = try a.add(attachment("a2"))
        #expect(try a.collectGarbage(keeping: []).map(\.containerID) == ["a2"])
        #expect(try b.leases().allSatisfy { $0.host == "node-b" })
    }

    /// Many "hosts" (separate store handles) allocating at once from one small subnet.
    @Test func concurrentHostsGetDistinctAddresses() throws {
        let store = try TemporaryDirectory()
        let path = store.path
        let outcomes = Outcomes()
        runOnThreads(16) { index in
            do throws(IPAMError) {
                let body =
                    #""ranges":[[{"subnet":"10.9.0.0/28"}]],"store":{"type":"file","path":"\#(path)","host":"node-\#(index % 4)"}"#
                let ipam = try AddressManager(config: config(body))
                outcomes.add(.success(try ipam.add(attachment("c\(index)")).addressTexts[0]))
            } catch {
                outcomes.add(.failure(error))
            }
        }
        #expect(outcomes.successes.count == 13)
        #expect(Set(outcomes.successes).count == 13)
        #expect(outcomes.failures.count == 3)
        #expect(outcomes.failures.allSatisfy { $0.kind == .exhausted })
    }

    @Test func releaseIsConditionalOnTheRecordStillBeingOurs() throws {
        let storeDir = try TemporaryDirectory()
        let store = try FileClusterStore(path: storeDir.path)
        let backend = ClusterLeaseStore(store: store, host: "node-a", network: "testnet")
        let ipam = AddressManager(config: try config(#""ranges":[[{"subnet":"10.9.0.0/29"}]]"#), backend: backend)
        _ = try ipam.add(attachment("c1"))
        let stale = try backend.leases()
        // Someone else takes the address over after we listed it.
        let key = "pier/ipam/testnet/leases/10.9.0.2"
        guard let current = try store.get(key) else {
            Issue.record("lease record missing")
            return
        }
        _ = try store.compareAndSwap(
            key, expectedRevision: current.revision, value: #"{"containerID":"x","host":"node-b","ifname":"eth0"}"#)
        try backend.release(stale[0])
        #expect(try store.get(key)?.value.contains("node-b") == true)
    }
}
