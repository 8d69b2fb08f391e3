import CNI
import Glibc
import Testing

@testable import Plugins

/// The portmap core against the fake kernel: validation before any request, the one
/// nf_tables batch an ADD plans, and DEL on a host where nothing (or everything) is moving.
@Suite struct PortmapCoreTests {
    static let previous = """
        {"cniVersion":"1.0.0","interfaces":[{"name":"pier0"},{"name":"veth1"},\
        {"name":"eth0","sandbox":"\(Harness.netns)"}],"ips":[{"address":"10.88.0.2/24","interface":2}]}
        """

    static func config(_ mappings: String?, previous: String? = PortmapCoreTests.previous) -> String {
        var text = #"{"cniVersion":"1.0.0","name":"unitnet","type":"portmap","capabilities":{"portMappings":true}"#
        if let mappings { text += #","runtimeConfig":{"portMappings":"# + mappings + "}" }
        if let previous { text += #","prevResult":"# + previous }
        return text + "}"
    }

    func plugin(_ harness: Harness) -> PortmapPlugin { PortmapPlugin(kernel: harness.fake.kernel) }

    @Test(arguments: [
        config(#"[{"hostPort":8080,"containerPort":80}]"#, previous: nil),
        config(#"[{"hostPort":0,"containerPort":80}]"#),
        config(#"[{"hostPort":8080,"containerPort":70000}]"#),
        config(#"[{"hostPort":8080,"containerPort":80,"protocol":"icmp"}]"#),
        config(#"[{"hostPort":8080,"containerPort":80,"hostIP":"not-an-ip"}]"#),
        config(#"[{"hostPort":8080,"containerPort":80},{"hostPort":8080,"containerPort":81}]"#),
    ])
    func invalidRequestsAreRefusedBeforeAnyKernelRequest(config: String) throws {
        let harness = try Harness()
        let outcome = harness.run(plugin(harness), "ADD", config)
        #expect(outcome.code == 7, "\(config): \(outcome.stdout)")
        if !config.contains("prevResult") { #expect(outcome.stdout.contains("must be called as chained plugin")) }
        #expect(harness.fake.requestCount == 0, "sent: \(harness.fake.log)")
    }

    @Test func nothingToPublishTouchesNothing() throws {
        let harness = try Harness()
        for config in [Self.config(nil), Self.config("[]")] {
            let outcome = harness.run(plugin(harness), "ADD", config)
            #expect(outcome.exitCode == 0, "\(outcome.stdout)")
            #expect(outcome.addresses == ["10.88.0.2/24"])
        }
        #expect(harness.fake.requestCount == 0)
    }

    @Test func addOnAnEmptyHostPublishesInOneBatchWithTheLayout() throws {
        let harness = try Harness()
        let config = Self.config(
            #"[{"hostPort":8080,"containerPort":80},{"hostPort":5353,"containerPort":53,"protocol":"udp"},"#
                + #"{"hostPort":9090,"containerPort":90,"hostIP":"127.0.0.1"}]"#)
        let outcome = harness.run(plugin(harness), "ADD", config)
        try #require(outcome.exitCode == 0, "\(outcome.stdout)")
        // prevResult passes through.
        #expect(outcome.addresses == ["10.88.0.2/24"])
        #expect(
            harness.fake.log == [
                "nft: batch of \(harness.fake.batches.first?.count ?? 0): newsetelem inet pier dnat_v4_bound (1 elements),"
                    + " newsetelem inet pier dnat_v4 (2 elements)"
            ], "\(harness.fake.log)")
        let batch = try #require(harness.fake.batches.first)
        #expect(batch.first == "newtable inet pier")
        for name in ["dnat_v4", "dnat_v6", "dnat_v4_bound", "dnat_v6_bound"] {
            #expect(batch.contains("newset inet pier \(name)"), "\(batch)")
        }
        for chain in ["prerouting", "output", "published", "postrouting"] {
            #expect(batch.contains("newchain inet pier \(chain)"), "\(batch)")
        }
        #expect(batch.contains { $0.hasPrefix("newrule inet pier published") })
    }

    /// Once the layout is in place, a later ADD's batch is its elements alone.
    @Test func addOnAnEstablishedHostCommitsOnlyItsElements() throws {
        let harness = try Harness()
        let first = harness.run(plugin(harness), "ADD", Self.config(#"[{"hostPort":8080,"containerPort":80}]"#))
        try #require(first.exitCode == 0, "\(first.stdout)")
        harness.fake.clearLog()
        let second = harness.run(
            plugin(harness), "ADD", Self.config(#"[{"hostPort":8081,"containerPort":80}]"#), containerID: "ctr2")
        try #require(second.exitCode == 0, "\(second.stdout)")
        #expect(harness.fake.batches == [["newsetelem inet pier dnat_v4 (1 elements)"]], "\(harness.fake.batches)")
    }

    @Test func theReferencesIptablesOnlyKeysAreAcceptedAndIgnored() throws {
        let harness = try Harness()
        let config =
            Self.config(#"[{"hostPort":8080,"containerPort":80}]"#).dropLast()
            + #","markMasqBit":13,"externalSetMarkChain":"KUBE-MARK-MASQ","conditionsV4":["-d","10.0.0.0/8"],"#
            + #""backend":"iptables"}"#
        let outcome = harness.run(plugin(harness), "ADD", String(config))
        #expect(outcome.exitCode == 0, "\(outcome.stdout)")
        #expect(harness.fake.batches.count == 1)
    }

    @Test func aRefusedBatchFailsTheAddAndIsTheOnlyRequestThatChangedAnything() throws {
        let harness = try Harness()
        harness.fake.fail("nft: batch", errno: EPERM)
        let outcome = harness.run(plugin(harness), "ADD", Self.config(#"[{"hostPort":8080,"containerPort":80}]"#))
        #expect(outcome.code == 999, "\(outcome.stdout)")
        #expect(
            harness.fake.log.count == 1 && harness.fake.log[0].hasSuffix("-> errno \(EPERM)"), "\(harness.fake.log)")
    }

    @Test func delOnAHostWithNothingPublishedSucceeds() throws {
        let harness = try Harness()
        harness.fake.removeNamespace(Harness.netns)
        for config in [Self.config(nil, previous: nil), Self.config(#"[{"hostPort":8080,"containerPort":80}]"#)] {
            let outcome = harness.run(plugin(harness), "DEL", config)
            #expect(outcome.exitCode == 0, "\(outcome.stdout)")
        }
        #expect(harness.fake.batches.isEmpty)
    }

    @Test func delWhileTheRulesetKeepsChangingSaysTryAgainLater() throws {
        let harness = try Harness()
        harness.fake.interruptNetfilterDumps = true
        let outcome = harness.run(plugin(harness), "DEL", Self.config(nil, previous: nil))
        #expect(outcome.code == 11, "\(outcome.stdout)")
        #expect(harness.fake.batches.isEmpty)
    }
}
