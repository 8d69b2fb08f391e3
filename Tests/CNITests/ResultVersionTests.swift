import Foundation
import IPAddressing
import Testing

@testable import CNI

@Suite struct ResultVersionTests {
    /// A dual-stack result using every 1.1 field, as an interface plugin would return it.
    func fullResult() throws -> CNIResult {
        CNIResult(
            interfaces: [
                .init(name: "veth1234", mac: "aa:bb:cc:dd:ee:01", mtu: 1500),
                .init(
                    name: "eth0", mac: "aa:bb:cc:dd:ee:02", mtu: 1500, sandbox: "/run/netns/c", socketPath: "/s",
                    pciID: "0000:00:01.0"),
            ],
            ips: [
                .init(address: try prefix("10.1.0.5/16"), gateway: try address("10.1.0.1"), interface: 1),
                .init(address: try prefix("10.2.0.5/24"), interface: 1),
                .init(address: try prefix("fd00::5/64"), gateway: try address("fd00::1"), interface: 1),
            ],
            routes: [
                .init(dst: try prefix("0.0.0.0/0")),
                .init(
                    dst: try prefix("192.168.0.0/16"), gw: try address("10.1.0.254"), mtu: 1400, advmss: 1360,
                    priority: 10, table: 0, scope: 0),
                .init(dst: try prefix("::/0"), gw: try address("fd00::1")),
            ],
            dns: .init(nameservers: ["10.1.0.1"], domain: "pier.local", search: ["svc"], options: ["ndots:5"]))
    }

    @Test func exactText110() throws {
        let expected =
            #"{"cniVersion":"1.1.0","interfaces":[{"name":"veth1234","mac":"aa:bb:cc:dd:ee:01","mtu":1500},"#
            + #"{"name":"eth0","mac":"aa:bb:cc:dd:ee:02","mtu":1500,"sandbox":"/run/netns/c","socketPath":"/s","pciID":"0000:00:01.0"}],"#
            + #""ips":[{"interface":1,"address":"10.1.0.5/16","gateway":"10.1.0.1"},{"interface":1,"address":"10.2.0.5/24"},"#
            + #"{"interface":1,"address":"fd00::5/64","gateway":"fd00::1"}],"#
            + #""routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.1.0.254","mtu":1400,"advmss":1360,"priority":10,"table":0,"scope":0},"#
            + #"{"dst":"::/0","gw":"fd00::1"}],"#
            + #""dns":{"nameservers":["10.1.0.1"],"domain":"pier.local","search":["svc"],"options":["ndots:5"]}}"#
        #expect(try fullResult().json(version: "1.1.0").encodedString == expected)
        #expect(
            try fullResult().json(version: "1.0.0").encodedString
                == expected.replacingOccurrences(of: #""cniVersion":"1.1.0""#, with: #""cniVersion":"1.0.0""#))
    }

    @Test(arguments: ["0.3.0", "0.3.1", "0.4.0"])
    func exactTextVersionedForms(_ version: String) throws {
        let expected =
            #"{"cniVersion":"\#(version)","interfaces":[{"name":"veth1234","mac":"aa:bb:cc:dd:ee:01"},"#
            + #"{"name":"eth0","mac":"aa:bb:cc:dd:ee:02","sandbox":"/run/netns/c"}],"#
            + #""ips":[{"version":"4","interface":1,"address":"10.1.0.5/16","gateway":"10.1.0.1"},"#
            + #"{"version":"4","interface":1,"address":"10.2.0.5/24"},"#
            + #"{"version":"6","interface":1,"address":"fd00::5/64","gateway":"fd00::1"}],"#
            + #""routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.1.0.254","mtu":1400,"advmss":1360,"priority":10,"table":0,"scope":0},"#
            + #"{"dst":"::/0","gw":"fd00::1"}],"#
            + #""dns":{"nameservers":["10.1.0.1"],"domain":"pier.local","search":["svc"],"options":["ndots:5"]}}"#
        #expect(try fullResult().json(version: version).encodedString == expected)
    }

    @Test(arguments: ["0.1.0", "0.2.0"])
    func exactTextLegacyForms(_ version: String) throws {
        let expected =
            #"{"cniVersion":"\#(version)","#
            + #""ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.1.0.254"}]},"#
            + #""ip6":{"ip":"fd00::5/64","gateway":"fd00::1","routes":[{"dst":"::/0","gw":"fd00::1"}]},"#
            + #""dns":{"nameservers":["10.1.0.1"],"domain":"pier.local","search":["svc"],"options":["ndots:5"]}}"#
        #expect(try fullResult().json(version: version).encodedString == expected)
    }

    @Test func emptyFieldsAreOmittedLikeGo() throws {
        let result = CNIResult(
            cniVersion: "1.0.0", interfaces: [.init(name: "eth0", mac: "", mtu: 0, sandbox: "")],
            routes: [.init(dst: try prefix("10.0.0.0/8"), mtu: 0, advmss: 0, priority: 0)])
        #expect(
            try result.json().encodedString
                == #"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"routes":[{"dst":"10.0.0.0/8"}]}"#)
        #expect(try CNIResult(cniVersion: "1.1.0").json().encodedString == #"{"cniVersion":"1.1.0"}"#)
    }

    @Test func legacyFormDropsRoutesOfAMissingFamily() throws {
        let result = CNIResult(
            ips: [.init(address: try prefix("10.0.0.2/24"))],
            routes: [.init(dst: try prefix("::/0")), .init(dst: try prefix("10.9.0.0/16"))])
        #expect(
            try result.json(version: "0.2.0").encodedString
                == #"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24","routes":[{"dst":"10.9.0.0/16"}]}}"#)
    }

    @Test(arguments: ["0.1.0", "0.2.0"])
    func layer2OnlyResultCannotGoBelow030(_ version: String) throws {
        let result = CNIResult(interfaces: [.init(name: "eth0", sandbox: "/run/netns/c")])
        expectCNIError(.incompatibleVersion, "cannot convert: no valid IP addresses") {
            _ = try result.json(version: version)
        }
        expectCNIError(.incompatibleVersion) { _ = try result.converted(to: version) }
        for ok in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] { _ = try result.json(version: ok) }
    }

    @Test func unknownVersionIsRejected() {
        expectCNIError(.incompatibleVersion) { _ = try CNIResult().json(version: "1.2.0") }
        expectCNIError(.incompatibleVersion) {
            _ = try CNIResult(bytes: bytes(#"{"cniVersion":"9.0.0"}"#), defaultVersion: "1.0.0")
        }
    }

    /// What survives a trip down to `version` and back up to the model.
    func expectedAfterRoundTrip(_ result: CNIResult, through version: String) throws -> CNIResult {
        var expected = result
        expected.cniVersion = version
        switch version {
        case "0.1.0", "0.2.0":
            expected.interfaces = []
            let ip4 = try #require(result.ips.first { $0.family == .v4 })
            let ip6 = try #require(result.ips.first { $0.family == .v6 })
            expected.ips = [ip4, ip6].map { CNIResult.IPConfig(address: $0.address, gateway: $0.gateway) }
            expected.routes = [IPFamily.v4, .v6].flatMap { family in
                result.routes.filter { $0.dst.family == family }.map { CNIResult.Route(dst: $0.dst, gw: $0.gw) }
            }
        case "0.3.0", "0.3.1", "0.4.0":
            expected.interfaces = result.interfaces.map { .init(name: $0.name, mac: $0.mac, sandbox: $0.sandbox) }
        default:
            break
        }
        return expected
    }

    @Test(arguments: CNIVersion.all)
    func roundTripsThroughEveryVersion(_ version: String) throws {
        let original = try fullResult()
        let wire = try original.encodedBytes(version: version)
        let back = try CNIResult(bytes: wire, defaultVersion: "1.1.0")
        #expect(back == (try expectedAfterRoundTrip(original, through: version)))
        // Re-encoding what was read is stable: a plugin passing prevResult through changes nothing.
        #expect(try back.encodedBytes(version: version) == wire)
    }

    @Test(arguments: CNIVersion.all)
    func convertsFromEveryVersionToEveryOther(_ source: String) throws {
        let wire = try fullResult().encodedBytes(version: source)
        let model = try CNIResult(bytes: wire, defaultVersion: source)
        for target in CNIVersion.all {
            let converted = try model.encodedBytes(version: target)
            let reread = try CNIResult(bytes: converted, defaultVersion: target)
            #expect(reread.cniVersion == target)
            #expect(reread.ips.map(\.address).contains(try prefix("10.1.0.5/16")))
            #expect(reread.ips.map(\.address).contains(try prefix("fd00::5/64")))
        }
    }

    @Test func reads020FormIntoTheModel() throws {
        let json = #"""
            {"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24","gateway":"10.0.0.1","routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}]},
             "dns":{"nameservers":["10.0.0.1"]}}
            """#
        let result = try CNIResult(bytes: bytes(json), defaultVersion: "0.2.0")
        #expect(result.ips == [.init(address: try prefix("10.0.0.2/24"), gateway: try address("10.0.0.1"))])
        #expect(result.routes == [.init(dst: try prefix("0.0.0.0/0"), gw: try address("10.0.0.1"))])
        #expect(
            try result.json(version: "1.0.0").encodedString
                == #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}],"dns":{"nameservers":["10.0.0.1"]}}"#
        )
        #expect(
            try result.json(version: "0.3.1").encodedString
                == #"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.2/24","gateway":"10.0.0.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}],"dns":{"nameservers":["10.0.0.1"]}}"#
        )
    }

    @Test func readingIsLenientWhereGoIs() throws {
        let json = #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":""}],"dns":null}"#
        let result = try CNIResult(bytes: bytes(json), defaultVersion: "1.0.0")
        #expect(result.ips == [.init(address: try prefix("10.0.0.2/24"))])
        #expect(result.dns.isEmpty)
    }

    @Test func readingRejectsBrokenResults() {
        expectCNIError(.decodingFailure) { _ = try CNIResult(bytes: bytes("nope"), defaultVersion: "1.0.0") }
        expectCNIError(.decodingFailure, #"failed to decode result: key "ips[0].address": missing"#) {
            _ = try CNIResult(bytes: bytes(#"{"cniVersion":"1.0.0","ips":[{}]}"#), defaultVersion: "1.0.0")
        }
        expectCNIError(.decodingFailure) {
            _ = try CNIResult(
                bytes: bytes(#"{"cniVersion":"0.4.0","ips":[{"version":"6","address":"10.0.0.2/24"}]}"#),
                defaultVersion: "0.4.0")
        }
        expectCNIError(.decodingFailure) {
            _ = try CNIResult(
                bytes: bytes(
                    #"{"cniVersion":"1.0.0","interfaces":[{"name":"a"}],"ips":[{"interface":3,"address":"10.0.0.2/24"}]}"#
                ),
                defaultVersion: "1.0.0")
        }
    }
}
