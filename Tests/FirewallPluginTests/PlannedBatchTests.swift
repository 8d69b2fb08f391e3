import Firewall
import IPAddressing
import PierTables
import Testing

/// What `ContainerFirewall` sends, against a fake kernel (no root): the layout and rules once,
/// then only set elements per container, nothing at all once everything is in place, and
/// deletes of exactly one owner's elements.
struct PlannedBatchTests {
    static let owner = "net=podman c1/eth0"
    static let other = "net=podman c2/eth0"

    static func attachment(
        _ policy: FirewallAttachment.IngressPolicy, owner: String = owner, address: String = "10.88.0.2"
    ) throws -> FirewallAttachment {
        FirewallAttachment(
            owner: owner, networkTag: "net=podman",
            addresses: [try #require(IPAddress(address)), try #require(IPAddress("fd88::2"))], policy: policy,
            bridge: "podman0", hostPort: "veth1234abcd")
    }

    /// Comments of the rules `attach` ensures, per chain as the fake kernel keys them.
    static func allRulesPresent(in kernel: FakeKernel, isolated: Bool) {
        kernel.rules[FakeKernel.key(family: 1, chain: "fw_forward")] = [
            "pier:firewall-established-v4", "pier:firewall-established-v6", "pier:firewall-ingress-v4",
            "pier:firewall-ingress-v6", "pier:firewall-egress-v4", "pier:firewall-egress-v6",
        ]
        kernel.rules[FakeKernel.key(family: 1, chain: "forward_mark")] = [
            "pier:mark-firewall-egress-v4", "pier:mark-firewall-egress-v6", "pier:mark-firewall-established-v4",
            "pier:mark-firewall-established-v6",
        ]
        if isolated { kernel.rules[FakeKernel.key(family: 7, chain: "forward")] = ["pier:firewall-isolated"] }
    }

    static func names(_ messages: [FakeKernel.Message], type: UInt8) -> [String] {
        messages.filter { $0.type == type }.map { FakeKernel.setName(of: $0) }
    }

    @Test func aFreshHostGetsLayoutRulesOnceAndTheContainersElements() throws {
        let kernel = FakeKernel()
        try ContainerFirewall(client: kernel.client).attach(try Self.attachment(.open))
        let sent = kernel.committed
        // The 6 firewall rules in fw_forward, and 4 in forward_mark that mark what they accept;
        // open needs nothing in bridge pier.
        let rules = sent.filter { $0.type == FakeKernel.newRule }
        let chains = rules.map { FakeKernel.string(FakeKernel.attributes($0.payload)[2] ?? []) }
        #expect(chains.filter { $0 == "fw_forward" }.count == 6)
        #expect(chains.filter { $0 == "forward_mark" }.count == 4)
        #expect(rules.count == 10)
        #expect(sent.allSatisfy { $0.family == 1 })
        #expect(Self.names(sent, type: FakeKernel.newSetElement).sorted() == ["fw_v4", "fw_v6"])
        let v4 = try #require(
            sent.first { $0.type == FakeKernel.newSetElement && FakeKernel.setName(of: $0) == "fw_v4" })
        #expect(FakeKernel.keys(of: v4) == [[10, 88, 0, 2]])
        #expect(v4.payload.containsSubsequence(Array(Self.owner.utf8)))
    }

    @Test func onceTheRulesExistAContainerAddsOnlyElements() throws {
        let kernel = FakeKernel()
        Self.allRulesPresent(in: kernel, isolated: true)
        try ContainerFirewall(client: kernel.client).attach(try Self.attachment(.isolated))
        let sent = kernel.committed
        #expect(!sent.isEmpty)
        #expect(sent.allSatisfy { $0.type == FakeKernel.newSetElement }, "only elements: \(sent.map(\.type))")
        #expect(
            Self.names(sent, type: FakeKernel.newSetElement).sorted()
                == ["fw_ingress_v4", "fw_ingress_v6", "fw_isolated_ports", "fw_v4", "fw_v6", "same_bridge"])
        let ingress = try #require(sent.first { FakeKernel.setName(of: $0) == "fw_ingress_v4" })
        // ifname (16 bytes, zero padded) . ipv4_addr
        let bridge = Array("podman0".utf8) + [UInt8](repeating: 0, count: 9)
        #expect(FakeKernel.keys(of: ingress) == [bridge + [10, 88, 0, 2]])
        let port = try #require(sent.first { FakeKernel.setName(of: $0) == "fw_isolated_ports" })
        #expect(port.family == 7)
    }

    @Test func whenEverythingIsInPlaceNothingIsCommitted() throws {
        let kernel = FakeKernel()
        Self.allRulesPresent(in: kernel, isolated: false)
        let bridge = Array("podman0".utf8) + [UInt8](repeating: 0, count: 9)
        let v6 = try #require(IPAddress("fd88::2")).bytes
        kernel.elements = [
            "fw_v4": [([10, 88, 0, 2], Self.owner)], "fw_v6": [(v6, Self.owner)],
            "fw_ingress_v4": [(bridge + [10, 88, 0, 2], Self.owner)], "fw_ingress_v6": [(bridge + v6, Self.owner)],
            "same_bridge": [(bridge + bridge, "net=podman")],
        ]
        let firewall = ContainerFirewall(client: kernel.client)
        #expect(try firewall.isAttached(try Self.attachment(.sameBridge)))
        try firewall.attach(try Self.attachment(.sameBridge))
        #expect(kernel.batches.isEmpty)
        // Another owner's element under one of our keys counts as missing (and is taken over).
        kernel.elements["fw_v4"] = [([10, 88, 0, 2], Self.other)]
        #expect(try firewall.missing(try Self.attachment(.sameBridge)).count == 1)
        try firewall.attach(try Self.attachment(.sameBridge))
        #expect(Self.names(kernel.committed, type: FakeKernel.deleteSetElement) == ["fw_v4"])
        #expect(Self.names(kernel.committed, type: FakeKernel.newSetElement).contains("fw_v4"))
    }

    @Test func detachDeletesOnlyTheOwnersElements() throws {
        let kernel = FakeKernel()
        kernel.elements = [
            "fw_v4": [([10, 88, 0, 2], Self.owner), ([10, 88, 0, 3], Self.other)],
            "fw_v6": [], "fw_ingress_v4": [], "fw_ingress_v6": [], "fw_isolated_ports": [],
        ]
        let removed = try ContainerFirewall(client: kernel.client).detach(owner: Self.owner)
        #expect(removed == 1)
        let deletes = kernel.committed.filter { $0.type == FakeKernel.deleteSetElement }
        #expect(deletes.count == 1)
        #expect(deletes.first.map(FakeKernel.keys(of:)) == [[10, 88, 0, 2]])
        // Again: nothing left to delete, nothing committed.
        kernel.elements["fw_v4"] = [([10, 88, 0, 3], Self.other)]
        let batchesBefore = kernel.batches.count
        #expect(try ContainerFirewall(client: kernel.client).detach(owner: Self.owner) == 0)
        #expect(kernel.batches.count == batchesBefore)
    }

    @Test func detachOnAHostWithoutTheTableSucceeds() throws {
        let kernel = FakeKernel()
        #expect(try ContainerFirewall(client: kernel.client).detach(owner: Self.owner) == 0)
        #expect(
            try ContainerFirewall(client: kernel.client).detach(owner: Self.owner, keys: Self.attachment(.isolated))
                == 0)
        #expect(kernel.batches.isEmpty)
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ part: [UInt8]) -> Bool {
        guard !part.isEmpty, part.count <= count else { return false }
        return (0...(count - part.count)).contains { Array(self[$0..<($0 + part.count)]) == part }
    }
}
