import CNI
import Foundation
import PluginSupport

@testable import Plugins

/// One plugin invocation's world without root: the fake kernel, a private directory holding
/// the IPAM data and a CNI_PATH whose `ipam` is this very test executable, so Pier's IPAM runs
/// in process (as it does in `pier-cni`) and its leases land in the private directory.
final class Harness {
    let fake = FakeKernel()
    let directory: String
    static let netns = "/run/netns/pier-unit-test-ctr"

    init() throws {
        var template = Array("/tmp/pier-plugins-tests-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        directory = String(cString: made)
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        try FileManager.default.createSymbolicLink(atPath: directory + "/ipam", withDestinationPath: executable)
        fake.addNamespace(Self.netns)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    var dataDir: String { directory + "/leases" }

    func run(
        _ plugin: some CNIPlugin, _ command: String, _ config: String, containerID: String = "ctr1",
        ifName: String = "eth0", netns: String = Harness.netns, args: String? = nil
    ) -> Outcome {
        var environment = [
            "CNI_COMMAND": command, "CNI_CONTAINERID": containerID, "CNI_NETNS": netns, "CNI_IFNAME": ifName,
            "CNI_PATH": directory,
        ]
        if let args { environment["CNI_ARGS"] = args }
        return Outcome(PluginRunner.run(plugin, environment: environment, stdin: Array(config.utf8)))
    }

    /// Addresses IPAM holds for `network` (lease files are named by address).
    func leases(_ network: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dataDir + "/" + network)) ?? []
        return names.filter { $0.first?.isNumber == true && !$0.contains("_") }.sorted()
    }

    struct Outcome {
        let exitCode: Int32
        let stdout: String
        let object: [String: Any]

        init(_ outcome: PluginOutcome) {
            exitCode = outcome.exitCode
            stdout = outcome.stdoutText
            object = (try? JSONSerialization.jsonObject(with: Data(outcome.stdout))) as? [String: Any] ?? [:]
        }

        var code: Int? { exitCode == 0 ? nil : object["code"] as? Int }
        var addresses: [String] { (object["ips"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String } }
    }
}
