import CNI
import Firewall
import IPAddressing
import NetNS
import PierState
import PierTables
import PluginSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A plugin that keeps state in Pier's nftables tables and can put it back from a cached ADD:
/// the nftables part of its ADD, over the request libcni's cache describes (prevResult is the
/// cached result, as CHECK and DEL get it). Idempotent and read before write: over intact
/// state it commits nothing. It never changes anything outside `inet pier` / `bridge pier`.
protocol NFTablesReapplying {
    func reapply(_ request: CNIRequest) throws
}

/// `pier firewall-reload`: rebuilds Pier's nftables state after someone else removed it, from
/// what Pier already knows: libcni's result cache, one entry per live attachment, each with
/// the conflist, result and capability arguments its ADD ran with.
public enum FirewallReload {
    /// What happened to one cached attachment.
    public enum Outcome: Equatable, Sendable {
        /// Every nftables-owning plugin of its list reapplied its state (those named).
        case reapplied(plugins: [String])
        /// Left alone, and why (its netns is gone: that is GC's work).
        case skipped(String)
        case failed(String)
    }

    /// Reapplies one cached attachment. `pluginPath` is where the runtime finds plugins: a
    /// plugin name there that is not Pier's executable (a reference plugin of the same name)
    /// made no state of Pier's, so it is skipped.
    public static func reapply(_ entry: ResultCacheEntry, pluginPath: [String]) -> Outcome {
        let list: NetworkConfigList
        do {
            list = try NetworkConfigList(bytes: entry.config)
        } catch {
            guard let single = try? NetworkConfigList(singlePluginBytes: entry.config) else {
                return .skipped("its cached config does not parse: \(error.msg)")
            }
            list = single
        }
        guard !entry.netns.isEmpty else { return .skipped("no network namespace") }
        do {
            _ = try NetworkNamespace.open(path: entry.netns)
        } catch {
            return .skipped("its network namespace \(entry.netns) is gone")
        }
        guard let json = entry.result, let cached = try? CNIResult(json: json, defaultVersion: list.cniVersion) else {
            return .skipped("no usable cached result")
        }
        var variables = [
            "CNI_COMMAND": CNICommand.add.rawValue, "CNI_CONTAINERID": entry.containerID, "CNI_NETNS": entry.netns,
            "CNI_IFNAME": entry.ifName, "CNI_PATH": pluginPath.joined(separator: ":"),
        ]
        variables["CNI_ARGS"] = entry.cniArgs.map { "\($0.0)=\($0.1)" }.joined(separator: ";")
        var reapplied: [String] = []
        for (index, plugin) in list.plugins.enumerated() {
            guard let reapplier = PluginTable.plugin(named: plugin.type) as? NFTablesReapplying,
                isPierExecutable(plugin.type, in: pluginPath)
            else { continue }
            do {
                let stdin = try list.request(
                    forPluginAt: index, command: .add, prevResult: cached, capabilityArgs: entry.capabilityArgs)
                let request = CNIRequest(
                    environment: try CNIEnvironment(variables), config: try NetworkConfig(bytes: stdin))
                try reapplier.reapply(request)
                reapplied.append(plugin.type)
            } catch {
                return .failed("\(plugin.type): \(CNIError(converting: error).msg)")
            }
        }
        return .reapplied(plugins: reapplied)
    }

    /// True when `name`, as the runtime would find it in `pluginPath`, is Pier's multi-call
    /// executable: that very file, or another name for it (a hard or symbolic link).
    static func isPierExecutable(_ name: String, in pluginPath: [String]) -> Bool {
        guard let found = try? PluginExec.find(name, in: pluginPath), let resolved = realPath(found) else {
            return false
        }
        if resolved.split(separator: "/").last.map(String.init) == PluginTable.executableName { return true }
        let directory = String(resolved[..<(resolved.lastIndex(of: "/") ?? resolved.startIndex)])
        var plugin = stat()
        var multiCall = stat()
        guard stat(resolved, &plugin) == 0, stat(directory + "/" + PluginTable.executableName, &multiCall) == 0 else {
            return false
        }
        return plugin.st_dev == multiCall.st_dev && plugin.st_ino == multiCall.st_ino
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

extension BridgePlugin: NFTablesReapplying {
    /// Masquerade, isolation and spoof check of the attachment, as ADD made them.
    func reapply(_ request: CNIRequest) throws {
        let config = try request.config.decode(BridgeConfig.self)
        guard let result = request.prevResult else { return }
        let attachment = Attachment(request)
        let firewall = try kernel.nftables()
        try NetworkRules(client: firewall, networkTag: attachment.networkTag).attach(
            bridge: config.bridge, masqueradeSubnets: config.ipMasq ? result.ips.map(\.address.network) : [],
            isolated: config.isolation, isInternal: config.isInternal)
        let container = result.interfaces.first { $0.name == request.ifName && !($0.sandbox ?? "").isEmpty }
        if config.macspoofchk, let mac = container?.mac.flatMap(MACAddress.init) {
            let spoofCheck = SpoofCheck(client: firewall)
            let port = attachment.hostVethName
            if try !spoofCheck.isComplete(port: port, mac: mac, owner: attachment.ownerTag) {
                try spoofCheck.protect(port: port, mac: mac, owner: attachment.ownerTag)
            }
        }
    }
}

extension PortmapPlugin: NFTablesReapplying {
    /// The published ports of the attachment (and the DNAT rules), as ADD made them.
    func reapply(_ request: CNIRequest) throws {
        guard let result = request.prevResult else { return }
        let mappings = try request.config.runtimeConfig("portMappings", as: [PortMapping].self) ?? []
        guard !mappings.isEmpty else { return }
        let config = try request.config.decode(PortmapConfig.self)
        let (v4, v6) = containerAddresses(result, ifName: request.ifName)
        let ports = try planned(mappings, v4: v4, v6: v6)
        guard !ports.isEmpty else { return }
        let owner = Attachment(request).ownerTag
        let publishing = PortPublishing(client: try kernel.nftables())
        if try publishing.isPublished(ports, owner: owner, snat: config.snat, masqueradeAll: config.masqAll) {
            return
        }
        try publish(ports, owner: owner, config: config, publishing: publishing)
    }
}

extension FirewallPlugin: NFTablesReapplying {
    /// The attachment's accept and ingress-policy elements, as ADD made them.
    func reapply(_ request: CNIRequest) throws {
        let policy = try request.config.decode(FirewallConfig.self).validated()
        guard let result = request.prevResult else { return }
        try ContainerFirewall(client: try kernel.nftables()).attach(planned(request, result: result, policy: policy))
    }
}
