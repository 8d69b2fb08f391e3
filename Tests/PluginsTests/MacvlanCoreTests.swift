import CNI
import Glibc
import Testing

@testable import Plugins

/// The macvlan core against the fake kernel: validation, the child born in the container
/// under a temporary name, the undo after each failing step, and DEL.
@Suite struct MacvlanCoreTests {
    static let network = "mvnet"

    static func config(_ extra: String = "", dataDir: String) -> String {
        #"{"cniVersion":"1.0.0","name":"mvnet","type":"macvlan","master":"eth9""# + extra
            + #","ipam":{"type":"ipam","subnet":"10.77.0.0/24","dataDir":""# + dataDir + #""}}"#
    }

    func harness() throws -> Harness {
        let harness = try Harness()
        harness.fake.addLink("eth9", kind: nil)
        return harness
    }

    func plugin(_ harness: Harness) -> MacvlanPlugin { MacvlanPlugin(kernel: harness.fake.kernel) }

    func run(_ harness: Harness, _ command: String, _ extra: String = "") -> Harness.Outcome {
        harness.run(plugin(harness), command, Self.config(extra, dataDir: harness.dataDir))
    }

    @Test(arguments: [
        #","mode":"sideways""#, #","mtu":-1"#, #","mac":"01:00:5e:00:00:01""#, #","bcqueuelen":-5"#,
    ])
    func invalidConfigsAreRefusedBeforeAnyKernelRequest(extra: String) throws {
        let harness = try harness()
        #expect(run(harness, "ADD", extra).code == 7)
        #expect(harness.fake.requestCount == 0)
    }

    @Test(arguments: [#","master":"nosuch0""#, #","mtu":9000"#])
    func aMasterThatCannotCarryItIsRefusedBeforeAnyChange(extra: String) throws {
        let harness = try harness()
        let outcome = run(harness, "ADD", extra)
        #expect(outcome.code == 7, "\(outcome.stdout)")
        #expect(harness.fake.log.isEmpty)
        #expect(harness.leases(Self.network).isEmpty)
    }

    @Test func anMTUAtTheMastersIsAccepted() throws {
        let harness = try harness()
        let outcome = run(harness, "ADD", #","mtu":1500"#)
        #expect(outcome.exitCode == 0, "\(outcome.stdout)")
        #expect(harness.fake.log.first?.hasPrefix("host: create macvlan") == true)
    }

    @Test func addCreatesTheChildInTheContainerThenRenamesAndAddressesIt() throws {
        let harness = try harness()
        let outcome = run(harness, "ADD")
        try #require(outcome.exitCode == 0, "\(outcome.stdout)")
        #expect(outcome.addresses == ["10.77.0.2/24"])
        let log = harness.fake.log
        try #require(log.count >= 2, "\(log)")
        // The host never sees the child: it is created in the container, then renamed there.
        #expect(log[0].hasPrefix("host: create macvlan mvtmp") && log[0].hasSuffix(" on eth9 in ctr"), "\(log)")
        #expect(log[1].hasPrefix("ctr: set mvtmp") && log[1].hasSuffix(" name eth0"), "\(log)")
        #expect(
            Array(log.dropFirst(2)) == [
                "ctr: set eth0 devconf",
                "ctr: sysctl net/ipv6/conf/eth0/ndisc_notify=1",
                "ctr: add address 10.77.0.2/24 to eth0",
                "ctr: set eth0 up",
            ], "\(log)")
        #expect(harness.fake.link("eth0", in: Harness.netns)?.kind == "macvlan")
        #expect(harness.leases(Self.network) == ["10.77.0.2"])
    }

    @Test(arguments: [
        ("host: create macvlan", EPERM, 999), ("name eth0", EBUSY, 11), ("ctr: add address", EADDRNOTAVAIL, 999),
        ("ctr: set eth0 up", ENOBUFS, 999),
    ])
    func aFailingStepUndoesEverythingBeforeIt(step: String, errno code: Int32, expected: Int) throws {
        let harness = try harness()
        harness.fake.fail(step, errno: code)
        let outcome = run(harness, "ADD")
        #expect(outcome.code == expected, "\(step): \(outcome.stdout)")
        let log = harness.fake.log
        let failed = try #require(log.firstIndex { $0.hasSuffix("-> errno \(code)") }, "\(log)")
        let undo = log[(failed + 1)...]
        if step == "host: create macvlan" {
            #expect(undo.isEmpty, "\(undo)")
        } else {
            #expect(undo.count == 1 && undo.first?.hasPrefix("ctr: delete ") == true, "\(step): \(undo)")
        }
        // Only lo is left in the container, and the address is free again.
        #expect(harness.fake.links[Harness.netns]?.map(\.name) == ["lo"])
        #expect(harness.leases(Self.network).isEmpty)
    }

    @Test func temporaryNamesThatKeepCollidingMeanTryAgainLater() throws {
        let harness = try harness()
        harness.fake.fail("host: create macvlan", errno: EEXIST, times: MacvlanLink.nameAttempts)
        let outcome = run(harness, "ADD")
        #expect(outcome.code == 11, "\(outcome.stdout)")
        #expect(harness.fake.log.count == MacvlanLink.nameAttempts)
    }

    @Test func delReleasesTheLeaseEvenWhenTheNamespaceIsGone() throws {
        let harness = try harness()
        try #require(run(harness, "ADD").exitCode == 0)
        harness.fake.removeNamespace(Harness.netns)
        harness.fake.clearLog()
        #expect(run(harness, "DEL").exitCode == 0)
        #expect(harness.leases(Self.network).isEmpty)
        #expect(harness.fake.log.isEmpty)
    }

    @Test func delLeavesAnInterfaceOfAnotherKindAlone() throws {
        let harness = try harness()
        harness.fake.addLink("eth0", kind: "dummy", in: Harness.netns)
        #expect(run(harness, "DEL").exitCode == 0)
        #expect(harness.fake.link("eth0", in: Harness.netns) != nil)
        #expect(harness.fake.log.isEmpty)
    }

    @Test func delWithABusyKernelSaysTryAgainLaterAfterReleasingTheLease() throws {
        let harness = try harness()
        try #require(run(harness, "ADD").exitCode == 0)
        harness.fake.fail("ctr: delete eth0", errno: EBUSY)
        #expect(run(harness, "DEL").code == 11)
        #expect(harness.leases(Self.network).isEmpty)
        #expect(run(harness, "DEL").exitCode == 0)
        #expect(harness.fake.link("eth0", in: Harness.netns) == nil)
    }
}
