import Foundation
import PierTestSupport
import Testing

/// A cnitool binary to test against, from `PIER_CNITOOL`.
let cnitoolPath: String? = {
    guard let path = ProcessInfo.processInfo.environment["PIER_CNITOOL"],
        FileManager.default.isExecutableFile(atPath: path)
    else { return nil }
    return path
}()

/// `pier plugin` and libcni-based tools share the result cache and the container-ID derivation, so
/// either can DEL what the other ADDed. Needs a cnitool binary: see `cnitool/README.md`.
@Suite(
    .enabled(if: isRoot, Comment(rawValue: needsRootReason)),
    .enabled(
        if: cnitoolPath != nil,
        "set PIER_CNITOOL to a cnitool built from Debian's libcni (Tests/PierCLITests/cnitool/README.md)"))
struct CnitoolInteropTests {
    func cnitool(_ pier: PierHarness, _ arguments: [String]) throws -> CommandResult {
        try runCommand(
            [
                "nsenter", "--net=\(pier.host.path)", "env", "NETCONFPATH=\(pier.configDirectory)",
                "CNI_PATH=\(pier.pluginDirectory)", "CNI_CACHE_DIR=\(pier.cacheDirectory)", cnitoolPath ?? "",
            ] + arguments)
    }

    @Test func eachDeletesWhatTheOtherAdded() throws {
        try withPier { pier in
            try pier.addNetwork("t227", subnet: "10.227.\(Int.random(in: 0...255)).0/24", cniVersion: "1.0.0")
            try withTestHosts(1) { hosts in
                let netns = hosts[0].path
                let added = try cnitool(pier, ["add", "t227", netns])
                try #require(added.succeeded, "\(added.stderr)")
                try pier.mustPier(["plugin", "check", "--net", "t227", "--netns", netns])
                try pier.mustPier(["plugin", "del", "--net", "t227", "--netns", netns])
                #expect(try pier.leftovers() == [])
                #expect(try hosts[0].linkNames() == ["lo"])

                try pier.mustPier(["plugin", "add", "--net", "t227", "--netns", netns])
                #expect(try cnitool(pier, ["check", "t227", netns]).succeeded)
                let deleted = try cnitool(pier, ["del", "t227", netns])
                #expect(deleted.succeeded, "\(deleted.stderr)")
                #expect(try pier.leftovers() == [])
                #expect(try hosts[0].linkNames() == ["lo"])
            }
        }
    }
}
