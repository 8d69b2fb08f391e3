import CNI
import Glibc
import NetlinkCore
import Testing

@testable import Plugins

/// The bridge core against the fake kernel: what it refuses before touching anything, the
/// requests of a first and a later ADD, the undo after each failing step, and DEL.
@Suite struct BridgeCoreTests {
    static let network = "unitnet"
    static let vethName = Attachment(network: network, containerID: "ctr1", ifName: "eth0").hostVethName

    static func config(_ extra: String = "", ipam: Bool = true) -> String {
        """
        {"cniVersion":"1.0.0","name":"\(network)","type":"bridge","bridge":"pier0","isGateway":true,\
        "isDefaultGateway":true,"ipMasq":true\(extra)\(ipam ? ",\"ipam\":{\"type\":\"ipam\",\"subnet\":\"10.88.0.0/24\",\"dataDir\":\"DATADIR\"}" : "")}
        """
    }

    func plugin(_ harness: Harness) -> BridgePlugin { BridgePlugin(kernel: harness.fake.kernel) }

    func add(_ harness: Harness, _ extra: String = "") -> Harness.Outcome {
        harness.run(
            plugin(harness), "ADD", Self.config(extra).replacingOccurrences(of: "DATADIR", with: harness.dataDir))
    }

    @Test(arguments: [
        (",\"mtu\":20", 7), (",\"vlan\":5000", 7), (",\"hairpinMode\":true,\"promiscMode\":true", 7),
        (",\"bridge\":\"a/b\"", 7), (",\"disableContainerInterface\":true", 7),
        (",\"vlan\":-1", 7), (",\"vlanTrunk\":[{\"minID\":10,\"maxID\":5}]", 7),
        (",\"bridge\":\"name-longer-than-15\"", 7),
    ])
    func invalidConfigsAreRefusedBeforeAnyKernelRequest(extra: String, code: Int) throws {
        let harness = try Harness()
        let outcome = add(harness, extra)
        #expect(outcome.code == code, "\(extra): \(outcome.stdout)")
        #expect(harness.fake.requestCount == 0, "sent: \(harness.fake.log)")
        #expect(harness.leases(Self.network).isEmpty)
    }

    @Test func aBadMACIsRefusedBeforeAnyKernelRequest() throws {
        let harness = try Harness()
        let config = Self.config().replacingOccurrences(of: "DATADIR", with: harness.dataDir)
        let outcome = harness.run(plugin(harness), "ADD", config, args: "MAC=01:00:5e:00:00:01")
        #expect(outcome.code == 7, "\(outcome.stdout)")
        #expect(harness.fake.requestCount == 0)
    }

    @Test func firstAddOnAnEmptyHostCreatesTheBridgeThenThePairThenTheAddresses() throws {
        let harness = try Harness()
        let outcome = add(harness)
        try #require(outcome.exitCode == 0, "\(outcome.stdout)\n\(harness.fake.log.joined(separator: "\n"))")
        #expect(outcome.addresses == ["10.88.0.2/24"])
        let veth = Self.vethName
        #expect(
            harness.fake.log == [
                "host: create bridge pier0",
                "host: sysctl net/ipv6/conf/pier0/accept_ra=0",
                "host: set pier0 up",
                "host: create veth \(veth) master pier0 peer eth0 in ctr",
                "host: set \(veth) alias pier:\(Self.network):ctr1:eth0",
                "host: set \(veth) up",
                "ctr: set eth0 devconf",
                "ctr: add address 10.88.0.2/24 to eth0",
                "ctr: set eth0 up",
                "ctr: add route default via 10.88.0.1 dev eth0",
                "host: add address 10.88.0.1/24 to pier0",
                "host: set pier0 mac",
                "host: sysctl net/ipv4/ip_forward=1",
                // An interval is two kernel elements; the network is isolated by default.
                "nft: batch of \(harness.fake.batches.first?.count ?? 0): newsetelem inet pier masq_v4 (2 elements),"
                    + " newsetelem inet pier same_bridge (1 elements), newsetelem inet pier isolated_bridges (1 elements)",
            ], "\(harness.fake.log.joined(separator: "\n"))")
        // The one batch brings the whole `inet pier` layout with it on a host that has none.
        let batch = try #require(harness.fake.batches.first)
        #expect(batch.first == "newtable inet pier")
        #expect(batch.contains("newchain inet pier forward") && batch.contains("newchain inet pier postrouting"))
        #expect(batch.contains("newset inet pier masq_v4") && batch.contains("newset inet pier same_bridge"))
        #expect(harness.leases(Self.network) == ["10.88.0.2"])
        // The model agrees: the pair is up on the bridge, the container end has the address.
        let hostEnd = try #require(harness.fake.link(veth))
        #expect(hostEnd.master == harness.fake.link("pier0")?.index && hostEnd.flags & 1 == 1)
        #expect(harness.fake.addressStrings(in: Harness.netns) == ["10.88.0.2/24"])
    }

    @Test func addOnAnEstablishedNetworkReusesTheBridge() throws {
        let harness = try Harness()
        try #require(add(harness).exitCode == 0)
        harness.fake.addNamespace("/run/netns/second", short: "ctr2")
        harness.fake.clearLog()
        let config = Self.config().replacingOccurrences(of: "DATADIR", with: harness.dataDir)
        let second = harness.run(plugin(harness), "ADD", config, containerID: "ctr2", netns: "/run/netns/second")
        try #require(second.exitCode == 0, "\(second.stdout)\n\(harness.fake.log.joined(separator: "\n"))")
        #expect(second.addresses == ["10.88.0.3/24"])
        let log = harness.fake.log
        #expect(!log.contains { $0.contains("create bridge") || $0.hasPrefix("host: set pier0") }, "\(log)")
        #expect(log.contains { $0.hasPrefix("host: create veth") && $0.hasSuffix("master pier0 peer eth0 in ctr2") })
        // The gateway is already there: its add is answered EEXIST and nothing else follows it.
        #expect(log.contains("host: add address 10.88.0.1/24 to pier0"))
        #expect(!log.contains("host: sysctl net/ipv4/ip_forward=1"))
        // The layout is in place: no table, chain or rule again, only the network's elements
        // (which this fake does not keep, so it is asked to add them once more).
        let batch = try #require(harness.fake.batches.first)
        #expect(batch.allSatisfy { $0.hasPrefix("newsetelem inet pier ") }, "\(batch)")
    }

    /// Each kernel step of ADD fails in turn: the ADD fails with it, the veth is gone again,
    /// the address is released, and the bridge this ADD created goes too (no other attachment
    /// uses it; the kernel tests show it staying when one does).
    @Test(arguments: [
        ("host: create veth", EPERM),
        ("host: set \(vethName) alias", EBUSY),
        ("ctr: add address", EADDRNOTAVAIL),
        ("ctr: add route", ENETUNREACH),
        ("host: add address 10.88.0.1", EPERM),
        ("nft: batch", ENOBUFS),
    ])
    func aFailingStepUndoesEverythingBeforeIt(step: String, errno code: Int32) throws {
        let harness = try Harness()
        harness.fake.fail(step, errno: code)
        let outcome = add(harness)
        #expect(outcome.code == (code == EBUSY ? 11 : 999), "\(step): \(outcome.stdout)")
        let log = harness.fake.log
        let failed = try #require(log.firstIndex { $0.hasSuffix("-> errno \(code)") }, "\(log)")
        let undo = Array(log[(failed + 1)...])
        if step == "host: create veth" {
            #expect(undo == ["host: delete pier0"], "\(undo)")
        } else {
            #expect(undo.contains("host: delete \(Self.vethName)"), "\(step): \(undo)")
        }
        #expect(harness.fake.link(Self.vethName) == nil)
        #expect(harness.fake.link("eth0", in: Harness.netns) == nil)
        #expect(harness.fake.link("pier0") == nil, "\(step): bridge kept")
        #expect(undo.last == "host: delete pier0", "\(step): \(undo)")
        #expect(harness.leases(Self.network).isEmpty, "\(step): lease kept")
    }

    @Test func delWithEverythingAlreadyGoneSucceeds() throws {
        let harness = try Harness()
        harness.fake.removeNamespace(Harness.netns)
        let config = Self.config().replacingOccurrences(of: "DATADIR", with: harness.dataDir)
        let outcome = harness.run(plugin(harness), "DEL", config)
        #expect(outcome.exitCode == 0, "\(outcome.stdout)")
        // The host end is looked up, not blindly deleted; the namespace is not there to look in.
        #expect(harness.fake.log.isEmpty, "\(harness.fake.log)")
    }

    @Test func delRemovesThePairAndTheLease() throws {
        let harness = try Harness()
        try #require(add(harness).exitCode == 0)
        harness.fake.clearLog()
        let config = Self.config().replacingOccurrences(of: "DATADIR", with: harness.dataDir)
        let outcome = harness.run(plugin(harness), "DEL", config)
        #expect(outcome.exitCode == 0, "\(outcome.stdout)")
        // The container end went with its peer.
        #expect(
            harness.fake.log == ["host: delete \(Self.vethName)", "ctr: delete eth0 (not there)"],
            "\(harness.fake.log)")
        #expect(harness.fake.link("eth0", in: Harness.netns) == nil)
        #expect(harness.leases(Self.network).isEmpty)
        // A second DEL finds nothing and still succeeds.
        #expect(harness.run(plugin(harness), "DEL", config).exitCode == 0)
    }

    /// Without prevResult, the address the in-process IPAM released is the one whose conntrack
    /// entries go: four filtered deletes (either end of either tuple) in one datagram.
    @Test func delForgetsTheConntrackEntriesOfTheReleasedAddress() throws {
        let harness = try Harness()
        try #require(add(harness).exitCode == 0)
        let config = Self.config().replacingOccurrences(of: "DATADIR", with: harness.dataDir)
        #expect(harness.run(plugin(harness), "DEL", config).exitCode == 0)
        let sent = try #require(harness.fake.conntrackTransport.sent.first)
        #expect(harness.fake.conntrackTransport.sent.count == 1)
        #expect(RecordingTransport.sequences(of: sent).count == 4)
        let address: [UInt8] = [10, 88, 0, 2]
        #expect((0...(sent.count - 4)).filter { Array(sent[$0..<$0 + 4]) == address }.count == 4)
    }

    /// A conntrack failure fails DEL (the runtime retries), after everything else is done.
    @Test func delReportsAConntrackFailureAfterTheRest() throws {
        let harness = try Harness()
        try #require(add(harness).exitCode == 0)
        harness.fake.conntrackTransport.responder = { datagram in
            RecordingTransport.sequences(of: datagram).map {
                RecordingTransport.errorReply(sequence: $0, errno: EPERM, portID: 4242)
            }
        }
        let config = Self.config().replacingOccurrences(of: "DATADIR", with: harness.dataDir)
        let outcome = harness.run(plugin(harness), "DEL", config)
        #expect(outcome.exitCode != 0, "\(outcome.stdout)")
        #expect(outcome.stdout.contains("conntrack"), "\(outcome.stdout)")
        #expect(harness.fake.link(Self.vethName) == nil)
        #expect(harness.leases(Self.network).isEmpty)
    }

    @Test func delWithABusyKernelSaysTryAgainButFinishesTheRest() throws {
        let harness = try Harness()
        try #require(add(harness).exitCode == 0)
        harness.fake.fail("host: delete \(Self.vethName)", errno: EBUSY)
        let config = Self.config().replacingOccurrences(of: "DATADIR", with: harness.dataDir)
        let outcome = harness.run(plugin(harness), "DEL", config)
        #expect(outcome.code == 11, "\(outcome.stdout)")
        // The other steps ran anyway: the container end and the lease are gone.
        #expect(harness.fake.log.contains("ctr: delete eth0"), "\(harness.fake.log)")
        #expect(harness.leases(Self.network).isEmpty)
        // The retry the runtime makes completes it.
        #expect(harness.run(plugin(harness), "DEL", config).exitCode == 0)
        #expect(harness.fake.link(Self.vethName) == nil)
    }
}
