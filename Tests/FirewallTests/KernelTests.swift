import Foundation
import IPAddressing
import NetNS
import NetlinkCore
import PierTestSupport
import Testing

@testable import Firewall
@testable import PierTables

/// Kernel behaviour inside throwaway namespaces; `nft -j` in that namespace is the oracle.
@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct KernelTests {
    @Test func createsTheLayoutIdempotentlyAndReadsItBack() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            let rules = PierLayout.rules
            #expect(try nft.apply(PierLayout.setup, ensuring: rules).count == 4)
            // Twice: nothing new, nothing duplicated, no error for existing objects.
            #expect(try nft.apply(PierLayout.setup, ensuring: rules).isEmpty)

            var elements = Batch()
            elements.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "c1/eth0")], to: PierLayout.dnatMap.path)
            elements.addElements(
                [SetElement(prefix: try #require(IPPrefix("10.88.0.0/16")), comment: "net:pier0")],
                to: PierLayout.masqueradeSubnets.path)
            try nft.commit(elements)

            // The independent oracle: nft's own view of the ruleset.
            let ruleset = try host.nftJSON(["list", "ruleset"])
            let chains = ruleset.compactMap { $0["chain"] as? [String: Any] }
            let prerouting = try #require(chains.first { $0["name"] as? String == "prerouting" })
            #expect(prerouting["type"] as? String == "nat")
            #expect(prerouting["hook"] as? String == "prerouting")
            #expect(prerouting["prio"] as? Int == -100)
            #expect(chains.count == 4)
            let nftRules = ruleset.compactMap { $0["rule"] as? [String: Any] }
            #expect(nftRules.count == 4)
            #expect(
                Set(nftRules.compactMap { $0["comment"] as? String }) == [
                    "pier:publish-v4", "pier:publish", "pier:masquerade-v4",
                ])
            let text = try host.mustRun(["nft", "list", "ruleset"]).stdout
            #expect(
                text.contains(
                    "meta nfproto ipv4 meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport map @dnat_v4"
                ))
            #expect(text.contains("fib daddr type local jump published"))
            #expect(text.contains("type inet_proto . inet_service : ipv4_addr . inet_service"))
            #expect(text.contains("tcp . 8080 comment \"c1/eth0\" : 10.88.0.2 . 80"))
            #expect(text.contains("ip saddr @masq_v4 ip daddr != @masq_v4 masquerade"))
            #expect(text.contains("10.88.0.0/16 comment \"net:pier0\""))

            // And our own reading back.
            #expect(try nft.tables(family: .inet).map(\.name) == ["pier"])
            let readChains = try nft.chains(family: .inet, table: "pier")
            #expect(readChains.first { $0.name == "postrouting" }?.base?.priority == ChainPriority.srcnat)
            let sets = try nft.sets(family: .inet, table: "pier")
            let map = try #require(sets.first { $0.name == "dnat_v4" })
            #expect(map.keyType == [.inetProtocol, .inetService])
            #expect(map.dataType == [.ipv4Address, .inetService])
            #expect(sets.first { $0.name == "masq_v4" }?.flags.contains(.interval) == true)
            let records = try nft.elements(of: PierLayout.dnatMap.path)
            #expect(records.count == 1)
            #expect(records.first?.comment == "c1/eth0")
            #expect(records.first?.decodedKey([.inetProtocol, .inetService]) == [.tcp, .port(8080)])
            #expect(
                records.first?.decodedData([.ipv4Address, .inetService])
                    == [.address(try #require(IPAddress("10.88.0.2"))), .port(80)])
            let ruleRecords = try nft.rules(family: .inet, table: "pier", chain: "published")
            #expect(ruleRecords.map(\.comment) == ["pier:publish-v4"])
            #expect(
                ruleRecords.first?.expressionNames == [
                    "meta", "cmp", "meta", "lookup", "meta", "payload", "lookup", "nat",
                ])
            #expect((ruleRecords.first?.handle ?? 0) > 0)

            // Removing a rule by its comment (network teardown).
            #expect(
                try nft.deleteRules(
                    commented: "pier:masquerade-v4", family: .inet, table: "pier", chain: "postrouting") == 1)
            #expect(try host.nftJSON(["list", "ruleset"]).compactMap { $0["rule"] }.count == 3)
            #expect(
                try nft.deleteRules(
                    commented: "pier:masquerade-v4", family: .inet, table: "pier", chain: "postrouting") == 0)
        }
    }

    @Test func verdictMapElementsJumpToChains() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            var setup = Batch()
            setup.add(PierLayout.table)
            setup.add(
                Chain(
                    family: .inet, table: "pier", name: "forward",
                    base: BaseChainSpec(type: .filter, hook: .forward, priority: ChainPriority.filter)))
            setup.add(Chain(family: .inet, table: "pier", name: "net-pier0"))
            let vmap = NFTSet(
                family: .inet, table: "pier", name: "networks", keyType: [.interfaceName], dataType: [.verdict])
            setup.add(vmap)
            let rule = Rule(family: .inet, table: "pier", chain: "forward", comment: "pier:networks")
                .ctState([.established, .related]).verdict(.accept)
            let dispatch = Rule(family: .inet, table: "pier", chain: "forward", comment: "pier:dispatch")
                .verdictMap([.iifname], map: "networks")
            try nft.apply(setup, ensuring: [rule, dispatch])
            var elements = Batch()
            elements.addElements(
                [SetElement(key: [.interfaceName("pier0")], verdict: .jump("net-pier0"), comment: "net:pier0")],
                to: vmap.path)
            try nft.commit(elements)
            let text = try host.mustRun(["nft", "list", "ruleset"]).stdout
            #expect(text.contains("type ifname : verdict"))
            #expect(text.contains("\"pier0\" comment \"net:pier0\" : jump net-pier0"))
            #expect(text.contains("ct state established,related accept"))
            #expect(text.contains("iifname vmap @networks"))
            let records = try nft.elements(of: vmap.path)
            #expect(records.first?.verdict == .jump("net-pier0"))
        }
    }

    @Test func deletesOnlyWhatTheOwnerOwns() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            try nft.commit(PierLayout.setup)
            var batch = Batch()
            batch.addElements(
                [
                    PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "aaaa/eth0"),
                    PierLayout.mapping(.udp, 8080, to: "10.88.0.2", 80, owner: "aaaa/eth0"),
                    PierLayout.mapping(.tcp, 9090, to: "10.88.0.3", 90, owner: "bbbb/eth0"),
                ], to: PierLayout.dnatMap.path)
            try nft.commit(batch)

            // A key owned by someone else is not deleted even when asked for by key.
            let refused = try nft.deleteElements(
                keys: [[.tcp, .port(9090)]], ownedBy: "aaaa/eth0", from: PierLayout.dnatMap.path)
            #expect(refused.isEmpty)

            // Single-element lookups.
            let found = try nft.element([.tcp, .port(9090)], in: PierLayout.dnatMap.path)
            #expect(found?.comment == "bbbb/eth0")
            #expect(try nft.element([.sctp, .port(1)], in: PierLayout.dnatMap.path) == nil)

            // By key: only the caller's own, absent keys ignored.
            let byKey = try nft.deleteElements(
                keys: [[.tcp, .port(8080)], [.sctp, .port(1)]], ownedBy: "aaaa/eth0", from: PierLayout.dnatMap.path)
            #expect(byKey.count == 1)
            #expect(try nft.element([.tcp, .port(8080)], in: PierLayout.dnatMap.path) == nil)

            let deleted = try nft.deleteElements(ownedBy: "aaaa/eth0", from: PierLayout.dnatMap.path)
            #expect(deleted.map { $0.decodedKey([.inetProtocol, .inetService]) } == [[.udp, .port(8080)]])
            let text = try host.mustRun(["nft", "list", "map", "inet", "pier", "dnat_v4"]).stdout
            #expect(!text.contains("aaaa/eth0"))
            #expect(text.contains("tcp . 9090 comment \"bbbb/eth0\" : 10.88.0.3 . 90"))

            // Deleting again, or from a set that does not exist, is not an error (CNI DEL).
            #expect(try nft.deleteElements(ownedBy: "aaaa/eth0", from: PierLayout.dnatMap.path).isEmpty)
            let missing = SetPath(family: .inet, table: "nope", name: "nope")
            #expect(try nft.deleteElements(ownedBy: "aaaa/eth0", from: missing).isEmpty)
        }
    }

    @Test func batchIsAllOrNothingAndNamesTheFailure() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            try nft.commit(PierLayout.setup)
            var first = Batch()
            first.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "aaaa/eth0")], to: PierLayout.dnatMap.path)
            try nft.commit(first)

            var clash = Batch()
            clash.addElements(
                [PierLayout.mapping(.tcp, 7070, to: "10.88.0.3", 70, owner: "bbbb/eth0")], to: PierLayout.dnatMap.path)
            clash.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.88.0.3", 80, owner: "bbbb/eth0")], to: PierLayout.dnatMap.path,
                exclusive: true)
            let error = try #require(throws: FirewallError.self) { try nft.commit(clash) }
            #expect(error.isAlreadyExists)
            #expect(error.operation == "add set elements")
            #expect(error.object == "inet pier dnat_v4")
            // The other element of the failed batch was not applied either.
            let text = try host.mustRun(["nft", "list", "map", "inet", "pier", "dnat_v4"]).stdout
            #expect(!text.contains("7070"))
            #expect(!text.contains("bbbb"))
        }
    }

    @Test func staleGenerationIsRefusedAndTheRetryHelperSucceeds() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            try nft.commit(PierLayout.setup)

            let generation = try nft.generation()
            // Another process changes the ruleset between our read and our commit.
            try host.mustRun(["nft", "add", "element", "inet", "pier", "dnat_v4", "{ tcp . 9999 : 10.88.0.9 . 99 }"])
            var batch = Batch()
            batch.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "aaaa/eth0")], to: PierLayout.dnatMap.path)
            let error = try #require(throws: FirewallError.self) { try nft.commit(batch, generation: generation) }
            #expect(error.isGenerationChanged)
            #expect(try nft.elements(of: PierLayout.dnatMap.path).count == 1)  // only the other process's

            var interfered = false
            let attempts = try nft.withGenerationCheck { _ throws(FirewallError) in
                if !interfered {
                    interfered = true
                    _ = try? host.mustRun(
                        ["nft", "add", "element", "inet", "pier", "dnat_v4", "{ udp . 9999 : 10.88.0.9 . 99 }"])
                }
                return batch
            }
            #expect(attempts == 2)
            #expect(try nft.elements(of: PierLayout.dnatMap.path).count == 3)
        }
    }

    /// The DEL race the generation check exists for: between reading "aaaa owns tcp . 8080"
    /// and deleting it, another process replaces that element with its own. The delete must
    /// not remove the replacement.
    @Test func ownerDeleteNeverRemovesAReplacedElement() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            try nft.commit(PierLayout.setup)
            var batch = Batch()
            batch.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "aaaa/eth0")], to: PierLayout.dnatMap.path)
            try nft.commit(batch)

            var replaced = false
            var deletedPerAttempt: [Int] = []
            try nft.withGenerationCheck { _ throws(FirewallError) in
                let owned = try nft.elements(of: PierLayout.dnatMap.path).filter { $0.comment == "aaaa/eth0" }
                deletedPerAttempt.append(owned.count)
                if !replaced {
                    replaced = true
                    _ = try? host.mustRun(
                        ["nft", "-f", "-"],
                        stdin: """
                            delete element inet pier dnat_v4 { tcp . 8080 }
                            add element inet pier dnat_v4 { tcp . 8080 comment "bbbb/eth0" : 10.88.0.3 . 80 }
                            """)
                }
                var delete = Batch()
                delete.deleteElements(owned, from: PierLayout.dnatMap.path)
                return delete
            }
            #expect(deletedPerAttempt == [1, 0])
            let records = try nft.elements(of: PierLayout.dnatMap.path)
            #expect(records.map(\.comment) == ["bbbb/eth0"])
        }
    }

    /// The host-IP-bound map (`ipv4_addr . inet_proto . inet_service`) and the IPv6 map load,
    /// and nft reads the rules back as the clauses they were built from.
    @Test func hostAddressAndIPv6MapsLoad() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            // The real maps and rules of port publishing (PierTables).
            let hostIPMap = PortPublishing.dnatV4Bound
            let v6Map = PortPublishing.dnatV6
            var setup = PierLayout.setup
            setup.add(hostIPMap)
            setup.add(v6Map)
            let hostIPRule = try #require(PortPublishing.dnatRules.first { $0.comment == "pier:publish-v4-bound" })
            let v6Rule = try #require(PortPublishing.dnatRules.first { $0.comment == "pier:publish-v6" })
            try nft.apply(setup, ensuring: [hostIPRule, v6Rule])
            var elements = Batch()
            elements.addElements(
                [
                    SetElement(
                        key: [.address(try #require(IPAddress("192.0.2.1"))), .tcp, .port(8443)],
                        data: [.address(try #require(IPAddress("10.88.0.4"))), .port(443)], comment: "c4/eth0")
                ], to: hostIPMap.path)
            elements.addElements(
                [
                    SetElement(
                        key: [.tcp, .port(8080)], data: [.address(try #require(IPAddress("fd00::2"))), .port(80)],
                        comment: "c6/eth0")
                ], to: v6Map.path)
            try nft.commit(elements)

            let text = try host.mustRun(["nft", "list", "ruleset"]).stdout
            #expect(text.contains("type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"))
            #expect(text.contains("192.0.2.1 . tcp . 8443 comment \"c4/eth0\" : 10.88.0.4 . 443"))
            #expect(text.contains("dnat ip to ip daddr . meta l4proto . th dport map @dnat_v4_bound"))
            #expect(text.contains("tcp . 8080 comment \"c6/eth0\" : fd00::2 . 80"))
            #expect(text.contains("dnat ip6 to meta l4proto . th dport map @dnat_v6"))
            let record = try #require(try nft.elements(of: hostIPMap.path).first)
            #expect(
                record.decodedKey([.ipv4Address, .inetProtocol, .inetService])
                    == [.address(try #require(IPAddress("192.0.2.1"))), .tcp, .port(8443)])
        }
    }

    /// Intervals over a concatenation (pipapo): one element with both ends.
    @Test func concatenatedIntervalSet() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            let set = NFTSet(
                family: .inet, table: "pier", name: "allowed", keyType: [.ipv4Address, .inetService],
                flags: [.interval])
            var batch = Batch()
            batch.add(PierLayout.table)
            batch.add(set)
            let low = try #require(IPAddress("10.1.0.0"))
            let high = try #require(IPAddress("10.1.255.255"))
            batch.addElements(
                [SetElement(key: [.address(low), .port(80)], through: [.address(high), .port(89)], comment: "r1")],
                to: set.path)
            try nft.commit(batch)
            let text = try host.mustRun(["nft", "list", "set", "inet", "pier", "allowed"]).stdout
            #expect(text.contains("type ipv4_addr . inet_service"))
            #expect(text.contains("10.1.0.0/16 . 80-89 comment \"r1\""))
            #expect(try nft.deleteElements(ownedBy: "r1", from: set.path).count == 1)
            #expect(try nft.elements(of: set.path).isEmpty)
        }
    }

    /// Owner deletes in an interval set remove both kernel elements of the owner's range,
    /// even when a neighbour's range starts exactly where it ends.
    @Test func ownerDeleteRemovesWholeIntervals() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            try nft.commit(PierLayout.setup)
            var batch = Batch()
            batch.addElements(
                [
                    SetElement(prefix: try #require(IPPrefix("10.88.0.0/16")), comment: "net:a"),
                    SetElement(prefix: try #require(IPPrefix("10.89.0.0/16")), comment: "net:b"),
                    SetElement(prefix: try #require(IPPrefix("10.90.0.0/16")), comment: "net:a"),
                ], to: PierLayout.masqueradeSubnets.path)
            try nft.commit(batch)
            #expect(try nft.deleteElements(ownedBy: "net:a", from: PierLayout.masqueradeSubnets.path).count == 2)
            let text = try host.mustRun(["nft", "list", "set", "inet", "pier", "masq_v4"]).stdout
            #expect(text.contains("elements = { 10.89.0.0/16 comment \"net:b\" }"))
            let left = try nft.elements(of: PierLayout.masqueradeSubnets.path)
            #expect(left.count == 2)  // the start and the end of net:b's range
        }
    }

    /// The kernel frees what a transaction removed after an RCU grace period, and releasing any
    /// netfilter socket waits for that: in a process that asked (a plugin), a batch that removes objects
    /// leaves the release of its socket, and of every netfilter socket opened after it, to a detached
    /// process. The removal itself is in effect when `commit` returns.
    @Test func removalsLeaveSocketReleasesToADetachedProcess() throws {
        var adds = Batch()
        adds.add(PierLayout.table)
        #expect(!adds.removesObjects)
        var removal = Batch()
        removal.delete(PierLayout.table)
        #expect(removal.removesObjects)
        NetfilterRelease.detachAfterRemovals()
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            var nft: NFTablesClient? = try client(in: host)
            _ = try nft?.apply(PierLayout.setup, ensuring: PierLayout.rules)
            try nft?.commit(removal)
            #expect((nft?.transport as? NetlinkSocket)?.releasesDetached == true)
            nft = nil
            let tables = try host.nftJSON(["list", "tables"]).compactMap { $0["table"] as? [String: Any] }
            #expect(tables.isEmpty, "\(tables)")
            let conntrack = try ConntrackClient(namespace: NetworkNamespace.open(path: host.path))
            #expect((conntrack.transport as? NetlinkSocket)?.releasesDetached == true)
        }
    }
}
