import Testing

@testable import CNI

@Suite struct ErrorTests {
    @Test(arguments: [
        (CNIErrorCode.incompatibleVersion, UInt(1)), (.unsupportedField, 2), (.unknownContainer, 3),
        (.invalidEnvironmentVariables, 4), (.ioFailure, 5), (.decodingFailure, 6), (.invalidNetworkConfig, 7),
        (.invalidNetNS, 8), (.tryAgainLater, 11), (.pluginNotAvailable, 50),
        (.pluginNotAvailableLimitedConnectivity, 51), (.internalError, 999), (.pluginSpecific(120), 120),
    ])
    func codesMatchTheSpec(_ code: CNIErrorCode, _ raw: UInt) {
        #expect(code.rawValue == raw)
        #expect(CNIErrorCode(rawValue: raw) == code)
    }

    @Test func encodesWithInputVersionAndOmitsEmptyDetails() {
        let bare = CNIError(.invalidNetworkConfig, "bad")
        #expect(bare.json(cniVersion: "0.4.0").encodedString == #"{"cniVersion":"0.4.0","code":7,"msg":"bad"}"#)
        let detailed = CNIError(.tryAgainLater, "busy", details: "lease lock held")
        #expect(
            detailed.json(cniVersion: nil).encodedString
                == #"{"cniVersion":"1.1.0","code":11,"msg":"busy","details":"lease lock held"}"#)
    }

    @Test func decodesAnErrorDocument() throws {
        let error = try #require(
            CNIError(json: try JSONValue(parsing: #"{"cniVersion":"1.0.0","code":11,"msg":"m","details":"d"}"#)))
        #expect(error == CNIError(.tryAgainLater, "m", details: "d"))
        let codeless = try #require(CNIError(json: try JSONValue(parsing: #"{"msg":"m"}"#)))
        #expect(codeless.code == .internalError)
        #expect(CNIError(json: try JSONValue(parsing: #"{"code":1}"#)) == nil)
    }

    struct NetlinkFailure: CNIErrorConvertible {
        var cniError: CNIError { CNIError(.tryAgainLater, "netlink busy") }
    }
    struct PlainFailure: Error, CustomStringConvertible {
        var description: String { "something broke" }
    }

    @Test func conversionKeepsCodesOrFallsBackTo999() {
        #expect(CNIError(converting: CNIError(.ioFailure, "x")) == CNIError(.ioFailure, "x"))
        #expect(CNIError(converting: NetlinkFailure()) == CNIError(.tryAgainLater, "netlink busy"))
        #expect(CNIError(converting: PlainFailure()) == CNIError(.internalError, "something broke"))
    }
}
