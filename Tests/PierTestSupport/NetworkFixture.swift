import Foundation

/// A network config for plugin tests, with its own lease directory (removed by `cleanUp()`),
/// so tests never share state with each other or with the machine's /var/lib/cni.
public final class NetworkFixture: @unchecked Sendable {
    public let name: String
    public let dataDirectory: String
    public var plugin: [String: Any]
    public var cniVersion: String

    /// `plugin` is the plugin object (type and its keys); an `ipam` section of type `ipam`
    /// gets this fixture's `dataDir`.
    public init(name: String? = nil, cniVersion: String = "1.1.0", plugin: [String: Any]) {
        self.name = name ?? "pier-t-\(uniqueTag())"
        self.cniVersion = cniVersion
        self.dataDirectory = NSTemporaryDirectory() + "pier-t-leases-\(uniqueTag())"
        self.plugin = plugin
    }

    /// The stdin a runtime would send for this network, with optional extra top-level keys
    /// (`prevResult`, `runtimeConfig`, `cni.dev/valid-attachments`, …).
    public func config(_ extra: [String: Any] = [:]) -> String {
        var object = plugin
        object["cniVersion"] = cniVersion
        object["name"] = name
        if var ipam = object["ipam"] as? [String: Any], ipam["type"] as? String == "ipam" {
            ipam["dataDir"] = ipam["dataDir"] ?? dataDirectory
            object["ipam"] = ipam
        }
        for (key, value) in extra { object[key] = value }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Lease files currently held in this network's lease directory.
    public func leases() -> [String] {
        let directory = dataDirectory + "/" + name
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0 != "lock" && !$0.hasPrefix("last_reserved_ip") && !$0.hasPrefix(".") }.sorted()
    }

    public func cleanUp() {
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    deinit { cleanUp() }
}
