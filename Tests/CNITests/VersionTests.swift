import Testing

@testable import CNI

@Suite struct VersionTests {
    @Test func supportedListIsTheGoList() {
        #expect(CNIVersion.all == ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        #expect(CNIVersion.current == "1.1.0")
    }

    @Test func comparesNumerically() throws {
        #expect(try CNIVersion.compare("0.10.0", "0.9.0") == 1)
        #expect(try CNIVersion.compare("0.4.0", "0.4.0") == 0)
        #expect(try CNIVersion.compare("0.3.1", "0.4.0") == -1)
        #expect(try CNIVersion.compare("1", "1.0.0") == 0)
        #expect(try CNIVersion.isAtLeast("1.1.0", "0.4.0"))
        #expect(try !CNIVersion.isAtLeast("0.3.1", "0.4.0"))
    }

    @Test(arguments: ["", "1.2.3.4", "a.b.c", "1..0", "1.-1.0"])
    func rejectsMalformedVersions(_ text: String) {
        expectCNIError(.decodingFailure) { _ = try SemanticVersion(parsing: text) }
    }

    @Test func exactMatchCheck() throws {
        try CNIVersion.checkSupported("0.3.1", supported: CNIVersion.all)
        let error = expectCNIError(.incompatibleVersion, "incompatible CNI versions") {
            try CNIVersion.checkSupported("1.2.0", supported: ["0.4.0", "1.0.0"])
        }
        #expect(error?.details == #"config is "1.2.0", plugin supports ["0.4.0" "1.0.0"]"#)
        expectCNIError(.incompatibleVersion) { try CNIVersion.checkSupported("0.3", supported: CNIVersion.all) }
    }

    @Test func newestUsableIgnoresVersionsAboveCurrent() {
        #expect(CNIVersion.newestUsable(["0.4.0", "1.0.0", "1.2.0", "junk"]) == "1.0.0")
        #expect(CNIVersion.newestUsable(["2.0.0"]) == nil)
    }

    @Test func versionInfoWireForm() throws {
        let info = VersionInfo(cniVersion: "0.4.0", supportedVersions: ["0.4.0", "1.0.0"])
        #expect(info.json.encodedString == #"{"cniVersion":"0.4.0","supportedVersions":["0.4.0","1.0.0"]}"#)
        #expect(try VersionInfo(decoding: info.json.encodedBytes) == info)
        #expect(try VersionInfo(decoding: bytes(#"{"cniVersion":"0.2.0"}"#)).supportedVersions == ["0.1.0", "0.2.0"])
        expectCNIError(.decodingFailure) { _ = try VersionInfo(decoding: bytes(#"{"cniVersion":"1.0.0"}"#)) }
    }
}
