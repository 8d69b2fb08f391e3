import CNI
import Firewall
import IPAddressing
import PierTables
import PluginSupport

/// The `firewall` plugin (chained only): accepts the container's addresses in Pier's forward
/// chain and applies the ingress policy, through elements of fixed sets in `inet pier` (and
/// `bridge pier` for `isolated`), tagged with the attachment.
struct FirewallPlugin: CNIPlugin {
    /// Where every kernel access goes (`PluginKernel.system` in production).
    var kernel: PluginKernel = .system

    var about: String { "Pier firewall plugin" }

    func add(_ request: CNIRequest) throws -> CNIResult {
        let policy = try request.config.decode(FirewallConfig.self).validated()
        guard var result = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin (no prevResult)")
        }
        result.cniVersion = request.cniVersion
        let attachment = try planned(request, result: result, policy: policy)
        try ContainerFirewall(client: try kernel.nftables()).attach(attachment)
        return result
    }

    func delete(_ request: CNIRequest) throws {
        // A DEL must succeed with whatever it is given: the config is not validated (the
        // elements are found by owner), and a missing prevResult means "search by owner".
        let owner = Attachment(request).ownerTag
        let keys = request.prevResult.flatMap { try? planned(request, result: $0, policy: .isolated, strict: false) }
        do {
            try ContainerFirewall(client: try kernel.nftables()).detach(owner: owner, keys: keys)
        } catch {
            throw CNIError(.internalError, "firewall DEL incomplete: \(error)")
        }
    }

    func check(_ request: CNIRequest) throws {
        let policy = try request.config.decode(FirewallConfig.self).validated()
        guard let result = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin (no prevResult)")
        }
        let attachment = try planned(request, result: result, policy: policy)
        let missing = try ContainerFirewall(client: try kernel.nftables()).missing(attachment)
        guard missing.isEmpty else {
            throw CNIError(.internalError, "firewall state missing: \(missing.joined(separator: ", "))")
        }
    }

    func garbageCollect(_ request: CNIRequest) throws {
        let valid = Set(
            (request.config.validAttachments ?? []).map {
                Attachment(network: request.config.name, containerID: $0.containerID, ifName: $0.ifName).ownerTag
            })
        let networkPrefix = Attachment.networkTag(request.config.name) + " "
        var failures: [String] = []
        do {
            let firewall = ContainerFirewall(client: try kernel.nftables())
            for owner in try firewall.owners().sorted() where owner.hasPrefix(networkPrefix) && !valid.contains(owner) {
                do {
                    try firewall.detach(owner: owner)
                } catch {
                    failures.append("\(owner): \(error)")
                }
            }
        } catch {
            failures.append("\(error)")
        }
        if !failures.isEmpty {
            throw CNIError(.internalError, "firewall GC incomplete: " + failures.joined(separator: "; "))
        }
    }

    func status(_ request: CNIRequest) throws {
        do {
            _ = try kernel.nftables().generation()
        } catch {
            throw CNIError(.pluginNotAvailable, "nftables is not usable: \(error)")
        }
    }

    /// The attachment's elements from prevResult: every address of the container interface
    /// (entries naming `CNI_IFNAME` in a sandbox, or no interface), the bridge (the first
    /// host-side interface, as the reference takes the first interface) and the container's
    /// bridge port (the next host-side interface). A policy that needs a bridge or port the
    /// result does not name is code 7 unless `strict` is off (DEL looks up what it can).
    func planned(
        _ request: CNIRequest, result: CNIResult, policy: FirewallAttachment.IngressPolicy, strict: Bool = true
    ) throws(CNIError) -> FirewallAttachment {
        let addresses = result.ips.filter { ip in
            guard let index = ip.interface else { return true }
            guard result.interfaces.indices.contains(index) else { return false }
            let interface = result.interfaces[index]
            return interface.name == request.ifName && !(interface.sandbox ?? "").isEmpty
        }.map(\.address.address)
        let hostSide = result.interfaces.filter { ($0.sandbox ?? "").isEmpty && !$0.name.isEmpty }.map(\.name)
        let bridge = hostSide.first
        let hostPort = hostSide.dropFirst().first
        if strict, policy != .open, bridge == nil {
            throw CNIError(
                .invalidNetworkConfig,
                "ingressPolicy \"\(policy.rawValue)\" needs the bridge in prevResult.interfaces: chain firewall after bridge"
            )
        }
        if strict, policy == .isolated, hostPort == nil {
            throw CNIError(
                .invalidNetworkConfig,
                "ingressPolicy \"isolated\" needs the container's bridge port in prevResult.interfaces: chain firewall after bridge"
            )
        }
        let attachment = Attachment(request)
        return FirewallAttachment(
            owner: attachment.ownerTag, networkTag: attachment.networkTag, addresses: addresses, policy: policy,
            bridge: bridge, hostPort: hostPort)
    }
}
