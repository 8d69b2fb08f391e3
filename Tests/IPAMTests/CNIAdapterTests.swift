import CNI
import IPAddressing
import Testing

@testable import IPAM

@Suite struct CNIAdapterTests {
    @Test(arguments: [
        (IPAMError.Kind.decode, UInt(6)), (.invalidConfig, 7), (.invalidArgument, 4), (.io, 5), (.exhausted, 11),
        (.addressUnavailable, 999), (.notFound, 999), (.unavailable, 50),
    ])
    func errorKindsMapToSpecCodes(kind: IPAMError.Kind, code: UInt) {
        let error = IPAMError(kind, "what happened", details: "why")
        let converted = CNIError(converting: error)
        #expect(converted.code.rawValue == code)
        #expect(converted.msg == "what happened")
        #expect(converted.details == "why")
    }

    @Test func resultIsTheAbbreviatedDelegateShape() throws {
        let cfg = try config(
            #""ranges":[[{"subnet":"10.1.0.0/29"}],[{"subnet":"fd00::/120"}]],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.6"}],"dns":{"nameservers":["10.1.0.53"],"domain":"example"}"#
        )
        let result = try AddressManager(config: cfg, backend: MemoryBackend()).add(attachment("c1"))
        let cni = result.cniResult(version: "1.0.0")
        #expect(cni.cniVersion == "1.0.0")
        #expect(cni.interfaces.isEmpty)
        #expect(cni.ips.map(\.address.description) == ["10.1.0.2/29", "fd00::2/120"])
        #expect(cni.ips.allSatisfy { $0.interface == nil })
        #expect(cni.ips.map { $0.gateway?.description } == ["10.1.0.1", "fd00::1"])
        #expect(cni.routes.map(\.dst.description) == ["0.0.0.0/0"])
        #expect(cni.routes.first?.gw == ip("10.1.0.6"))
        #expect(cni.dns.nameservers == ["10.1.0.53"])
        #expect(cni.dns.domain == "example")
    }
}
