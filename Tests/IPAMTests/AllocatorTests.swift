import IPAddressing
import Testing

@testable import IPAM

@Suite struct CandidateIteratorTests {
    func rangeSet(_ ranges: [(String, String?, String?, String?)]) throws -> RangeSet {
        try RangeSet(ranges.map { try AddressRange(subnet: $0.0, rangeStart: $0.1, rangeEnd: $0.2, gateway: $0.3) })
    }

    @Test func startsAtRangeStartAndSkipsGateway() throws {
        let set = try rangeSet([("10.0.0.0/29", nil, nil, nil)])
        let order = Array(CandidateIterator(rangeSet: set, lastReserved: nil)).map(\.description)
        // .0 network, .1 gateway, .7 broadcast never appear.
        #expect(order == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"])
    }

    @Test func roundRobinStartsAfterLastReservedAndWraps() throws {
        let set = try rangeSet([("10.0.0.0/29", nil, nil, nil)])
        let order = Array(CandidateIterator(rangeSet: set, lastReserved: ip("10.0.0.4"))).map(\.description)
        #expect(order == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"])
    }

    @Test func lastReservedOutsideTheSetRestartsAtTheBeginning() throws {
        let set = try rangeSet([("10.0.0.0/29", nil, nil, nil)])
        let order = Array(CandidateIterator(rangeSet: set, lastReserved: ip("192.168.1.1"))).map(\.description)
        #expect(order.first == "10.0.0.2")
        #expect(order.count == 5)
    }

    @Test func walksAcrossRangesOfASet() throws {
        let set = try rangeSet([
            ("10.0.0.0/24", "10.0.0.10", "10.0.0.12", nil), ("10.0.1.0/24", "10.0.1.1", "10.0.1.3", "10.0.1.2"),
        ])
        #expect(
            Array(CandidateIterator(rangeSet: set, lastReserved: nil)).map(\.description) == [
                "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.1.1", "10.0.1.3",
            ])
        #expect(
            Array(CandidateIterator(rangeSet: set, lastReserved: ip("10.0.1.3"))).map(\.description) == [
                "10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.1.1",
                "10.0.1.3",
            ])
        #expect(
            Array(CandidateIterator(rangeSet: set, lastReserved: ip("10.0.0.12"))).map(\.description) == [
                "10.0.1.1", "10.0.1.3", "10.0.0.10", "10.0.0.11", "10.0.0.12",
            ])
    }

    @Test func ipv6() throws {
        let set = try rangeSet([("fd00::/126", nil, nil, nil)])
        // v6 has no broadcast: ::3 is usable; ::1 is the gateway.
        #expect(
            Array(CandidateIterator(rangeSet: set, lastReserved: nil)).map(\.description) == ["fd00::2", "fd00::3"])
        let wide = try rangeSet([("fd00:1::/64", "fd00:1::ffff:ffff:ffff:fffe", nil, nil)])
        #expect(
            Array(CandidateIterator(rangeSet: wide, lastReserved: nil)).map(\.description) == [
                "fd00:1::ffff:ffff:ffff:fffe", "fd00:1::ffff:ffff:ffff:ffff",
            ])
    }

    @Test func gatewayAsOnlyAddressYieldsNothing() throws {
        let set = try rangeSet([("10.0.0.0/30", "10.0.0.1", "10.0.0.1", nil)])
        #expect(Array(CandidateIterator(rangeSet: set, lastReserved: nil)).isEmpty)
    }
}

@Suite struct AllocationTests {
    let dualStack = #""ranges":[[{"subnet":"10.1.0.0/29"}],[{"subnet":"fd00:1::/125"}]]"#

    func ipam(_ ipamBody: String, extra: String = "", environmentIPs: [String] = []) throws -> (
        AddressManager, MemoryBackend
    ) {
        let backend = MemoryBackend()
        return (
            AddressManager(
                config: try config(ipamBody, extra: extra, environmentIPs: environmentIPs), backend: backend), backend
        )
    }

    @Test func dualStackOneAddressPerSetInOrder() throws {
        let (ipam, backend) = try ipam(dualStack)
        let first = try ipam.add(attachment("c1"))
        #expect(first.addressTexts == ["10.1.0.2/29", "fd00:1::2/125"])
        #expect(first.ips.map { $0.gateway?.description } == ["10.1.0.1", "fd00:1::1"])
        let second = try ipam.add(attachment("c2"))
        #expect(second.addressTexts == ["10.1.0.3/29", "fd00:1::3/125"])
        #expect(backend.markers == [0: ip("10.1.0.3"), 1: ip("fd00:1::3")])
    }

    @Test func roundRobinDoesNotReuseAReleasedAddressAtOnce() throws {
        let (ipam, _) = try ipam(#""ranges":[[{"subnet":"10.1.0.0/29"}]]"#)
        #expect(try ipam.add(attachment("c1")).addressTexts == ["10.1.0.2/29"])
        try ipam.release(attachment("c1"))
        #expect(try ipam.add(attachment("c2")).addressTexts == ["10.1.0.3/29"])
    }

    @Test func exhaustionWrapsThenFailsWithHostLocalMessage() throws {
        let (ipam, _) = try ipam(#""ranges":[[{"subnet":"10.1.0.0/29"}]]"#)
        var got: [String] = []
        for index in 0..<5 { got += try ipam.add(attachment("c\(index)")).addressTexts }
        #expect(got == ["10.1.0.2/29", "10.1.0.3/29", "10.1.0.4/29", "10.1.0.5/29", "10.1.0.6/29"])
        do {
            _ = try ipam.add(attachment("c9"))
            Issue.record("allocated from a full range")
        } catch {
            #expect(error.kind == .exhausted)
            #expect(error.cniCode == 11)
            #expect(error.message.contains("no IP addresses available in range set: 10.1.0.1-10.1.0.6"))
        }
        // Free one in the middle: wrap-around finds it.
        try ipam.release(attachment("c1"))
        #expect(try ipam.add(attachment("c9")).addressTexts == ["10.1.0.3/29"])
    }

    @Test func reservedAddressesAreNeverHandedOut() throws {
        let (ipam, _) = try ipam(#""ranges":[[{"subnet":"10.1.0.0/28","gateway":"10.1.0.7"}]]"#)
        var seen: Set<String> = []
        var index = 0
        while let result = try? ipam.add(attachment("c\(index)")) {
            seen.insert(result.ips[0].address.address.description)
            index += 1
        }
        #expect(seen.count == 13)  // 16 − network − broadcast − gateway
        #expect(!seen.contains("10.1.0.0"))
        #expect(!seen.contains("10.1.0.15"))
        #expect(!seen.contains("10.1.0.7"))
    }

    @Test func gatewaysOfOtherRangesInTheSetAreSkippedToo() throws {
        let (ipam, _) = try ipam(
            #""ranges":[[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.11","gateway":"10.1.0.20"},{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.20","rangeEnd":"10.1.0.21","gateway":"10.1.0.10"}]]"#
        )
        #expect(try ipam.add(attachment("a")).addressTexts == ["10.1.0.11/24"])
        #expect(try ipam.add(attachment("b")).addressTexts == ["10.1.0.21/24"])
        #expect(throws: IPAMError.self) { try ipam.add(attachment("c")) }
    }

    @Test func requestedAddressIsHonouredPerSet() throws {
        let (ipam, _) = try ipam(
            dualStack, extra: #","runtimeConfig":{"ips":["10.1.0.5/29"]}"#, environmentIPs: ["fd00:1::6"])
        #expect(try ipam.add(attachment("c1")).addressTexts == ["10.1.0.5/29", "fd00:1::6/125"])
    }

    @Test func requestedAddressTakenNamesTheAddressAndRollsBack() throws {
        let (first, backend) = try ipam(dualStack, extra: #","args":{"cni":{"ips":["fd00:1::4"]}}"#)
        _ = try first.add(attachment("c1"))
        let second = AddressManager(
            config: try config(dualStack, extra: #","args":{"cni":{"ips":["fd00:1::4"]}}"#), backend: backend)
        do {
            _ = try second.add(attachment("c2"))
            Issue.record("handed out a taken address")
        } catch {
            #expect(error.kind == .addressUnavailable)
            #expect(error.message.contains("requested IP address fd00:1::4 is not available"))
            #expect(error.message.contains("held by c1/eth0"))
        }
        // The v4 address reserved for c2 before the failure was released.
        #expect(backend.records.values.allSatisfy { $0.containerID == "c1" })
    }

    @Test(arguments: [
        ("10.9.9.9", "not in any range set"), ("10.1.0.1", "is the gateway"), ("10.1.0.0", "not in any range set"),
        ("nonsense", "invalid requested IP address"),
    ])
    func badRequestsFailBeforeTouchingTheStore(request: String, expected: String) throws {
        let backend = MemoryBackend()
        do {
            let cfg = try config(dualStack, environmentIPs: [request])
            _ = try AddressManager(config: cfg, backend: backend).add(attachment("c1"))
            Issue.record("accepted request \(request)")
        } catch {
            #expect(error.description.contains(expected), "\(error)")
            #expect(error.description.contains(request))
        }
        #expect(backend.reserveCalls == 0)
        #expect(backend.records.isEmpty)
    }

    @Test func twoRequestsInOneSetAreRejected() throws {
        let (ipam, backend) = try ipam(dualStack, environmentIPs: ["10.1.0.3,10.1.0.4"])
        #expect(throws: IPAMError.self) { try ipam.add(attachment("c1")) }
        #expect(backend.records.isEmpty)
    }

    @Test func duplicateAllocationForSameAttachmentIsRefused() throws {
        let (ipam, _) = try ipam(dualStack)
        _ = try ipam.add(attachment("c1"))
        do {
            _ = try ipam.add(attachment("c1"))
            Issue.record("allocated twice")
        } catch {
            #expect(error.message.contains("10.1.0.2 has been allocated to c1, duplicate allocation is not allowed"))
        }
        // Another interface of the same container is a different attachment.
        #expect(try ipam.add(attachment("c1", "net1")).addressTexts == ["10.1.0.3/29", "fd00:1::3/125"])
    }

    @Test func exhaustingTheSecondSetReleasesTheFirst() throws {
        let (ipam, backend) = try ipam(#""ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.2.0.0/30"}]]"#)
        _ = try ipam.add(attachment("c1"))
        do {
            _ = try ipam.add(attachment("c2"))
            Issue.record("allocated from a full set")
        } catch {
            #expect(error.message.hasPrefix("failed to allocate for range 1: no IP addresses available"))
        }
        #expect(backend.records.count == 2)
    }

    @Test func releaseIsIdempotentAndMatchesIfname() throws {
        let (ipam, backend) = try ipam(dualStack)
        _ = try ipam.add(attachment("c1"))
        _ = try ipam.add(attachment("c1", "net1"))
        #expect(try ipam.release(attachment("c1")).count == 2)
        #expect(try ipam.release(attachment("c1")).isEmpty)
        #expect(try ipam.release(attachment("unknown")).isEmpty)
        #expect(backend.records.values.map(\.ifname) == ["net1", "net1"])
    }

    @Test func legacyRecordsReleasedOnlyWithoutExactMatch() throws {
        let (ipam, backend) = try ipam(dualStack)
        backend.records[ip("10.1.0.6")] = Lease(address: ip("10.1.0.6"), containerID: "old", ifname: nil)
        try ipam.check(attachment("old"))
        #expect(try ipam.release(attachment("old")).map(\.address) == [ip("10.1.0.6")])
        #expect(throws: IPAMError.self) { try ipam.check(attachment("old")) }
    }

    @Test func checkFindsTheLease() throws {
        let (ipam, _) = try ipam(dualStack)
        _ = try ipam.add(attachment("c1"))
        try ipam.check(attachment("c1"))
        do {
            try ipam.check(attachment("c1", "eth9"))
            Issue.record("CHECK passed without a lease")
        } catch {
            #expect(error.kind == .notFound)
        }
    }

    @Test func garbageCollectionKeepsOnlyValidAttachments() throws {
        let (ipam, backend) = try ipam(dualStack)
        _ = try ipam.add(attachment("keep"))
        _ = try ipam.add(attachment("drop"))
        _ = try ipam.add(attachment("keep", "net1"))
        backend.records[ip("10.1.0.6")] = Lease(address: ip("10.1.0.6"), containerID: "keep", ifname: nil)
        backend.records[ip("fd00:1::7")] = Lease(address: ip("fd00:1::7"), containerID: "legacy-drop", ifname: nil)
        let released = try ipam.collectGarbage(keeping: [attachment("keep"), attachment("other", "x")])
        #expect(Set(released.map(\.containerID)) == ["drop", "keep", "legacy-drop"])
        #expect(released.filter { $0.containerID == "keep" }.allSatisfy { $0.ifname == "net1" })
        #expect(backend.records.count == 3)
        // An empty list means nothing is valid.
        try ipam.collectGarbage(keeping: [])
        #expect(backend.records.isEmpty)
    }

    @Test func statusReportsExhaustion() throws {
        let (ipam, _) = try ipam(#""ranges":[[{"subnet":"10.1.0.0/30"}]]"#)
        try ipam.status()
        _ = try ipam.add(attachment("c1"))
        do {
            try ipam.status()
            Issue.record("STATUS ok with a full range")
        } catch {
            #expect(error.cniCode == 50)
        }
    }

    @Test func staticModeEchoesAndChecksPrevResult() throws {
        let body = #""addresses":[{"address":"10.9.0.5/24","gateway":"10.9.0.1"}]"#
        let ipam = AddressManager(config: try config(body), backend: nil)
        let result = try ipam.add(attachment("c1"))
        #expect(result.addressTexts == ["10.9.0.5/24"])
        #expect(result.ips[0].gateway == ip("10.9.0.1"))
        try ipam.release(attachment("c1"))
        #expect(throws: IPAMError.self) { try ipam.check(attachment("c1")) }
        let withPrev = AddressManager(
            config: try config(body, extra: #","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.5/24"}]}"#),
            backend: nil)
        try withPrev.check(attachment("c1"))
    }
}
