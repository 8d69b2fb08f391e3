import CNI
import Firewall
import IPAddressing
import Netlink
import PluginSupport

/// Leftovers: state that outlived the container it belonged to, and state that should be
/// there but is not. Each finding says how to remove or restore exactly that object.
struct StaleState {
    let index: AttachmentIndex
    let host: NamespaceSnapshot
    let firewall: FirewallSnapshot
    let leaseDirectories: [String]
    let networks: [NetworkConfigList.Summary]
    let containersKnown: Bool

    func run() -> [Finding] {
        let findings =
            veths() + leases() + cacheEntries() + elements() + missingPorts() + missingInterfaces() + tableRules()
            + publishingRules() + bridges()
        guard findings.isEmpty else { return findings }
        return [Finding(check: "stale", severity: .ok, message: "no stale veths, leases, cache entries or elements")]
    }

    func veths() -> [Finding] {
        host.attachedLinks.compactMap { link, attachment in
            if let path = index.netnsPaths[attachment], !index.live.contains(attachment) {
                return Finding(
                    check: "stale.veth", severity: .warning, subject: link.name,
                    message:
                        "host veth \(link.name) of \(describe(attachment)) outlived its container: netns \(path) is gone",
                    fix: "pier gc, or: ip link delete \(link.name)")
            }
            guard index.netnsPaths[attachment] == nil, link.linkNetnsID == nil else { return nil }
            return Finding(
                check: "stale.veth", severity: .warning, subject: link.name,
                message: "host veth \(link.name) of \(describe(attachment)) has no container end in another namespace",
                fix: "pier gc, or: ip link delete \(link.name)")
        }
    }

    func leases() -> [Finding] {
        var findings: [Finding] = []
        for directory in leaseDirectories {
            let reader = LeaseReader(dataDirectory: directory)
            // Only Pier's networks: other CNI users may share the lease root.
            for network in reader.networks() where networks.contains(where: { $0.name == network }) {
                for lease in reader.leases(network: network)
                where !index.isLive(network: network, containerID: lease.containerID, ifName: lease.ifName) {
                    findings.append(
                        Finding(
                            check: "stale.lease", severity: .warning, subject: lease.path,
                            message:
                                "address \(lease.address) of network \(network) is leased to \(shortID(lease.containerID))/\(lease.ifName), which has no live attachment",
                            fix: "pier gc, or: rm \(lease.path)"))
                }
            }
        }
        return findings
    }

    func cacheEntries() -> [Finding] {
        index.cached.compactMap { entry in
            let known = !containersKnown || index.containers.contains { $0.id == entry.attachment.containerID }
            guard !index.live.contains(entry.attachment) || !known else { return nil }
            let why = entry.netns.isEmpty ? "it names no netns" : "netns \(entry.netns) is gone"
            return Finding(
                check: "stale.cache", severity: .warning, subject: entry.path,
                message:
                    "cached result of \(describe(entry.attachment)) has no container: \(known ? why : "no container record")",
                fix: "pier gc (runs DEL with the cached config), or: rm \(entry.path)")
        }
    }

    /// Elements tagged with an attachment that is not alive. Network-level tags (`net=X`,
    /// `net=X <subnet>`) belong to networks, not attachments, and are checked with bridges.
    func elements() -> [Finding] {
        let liveTags = index.liveOwnerTags
        return firewall.elements.compactMap { element in
            guard let tag = element.comment, isAttachmentTag(tag), !liveTags.contains(tag) else { return nil }
            return Finding(
                check: "stale.element", severity: .warning, subject: "\(element.set) \(element.nftKey)",
                message:
                    "element \(element.nftKey) of \(element.set) is tagged \"\(tag)\", an attachment that no longer exists",
                fix: "pier gc, or: nft delete element \(element.set) { \(element.nftKey) }")
        }
    }

    /// Per-network elements only act through `inet pier`'s fixed rules (PierTables); a flushed
    /// chain silently turns masquerade or isolation off for every network.
    func tableRules() -> [Finding] {
        let checks: [(sets: [String], chain: String, comment: String, what: String, severity: Severity)] = [
            (["masq_v4"], "postrouting", "pier:masquerade-v4", "IPv4 masquerade", .error),
            (["masq_v6"], "postrouting", "pier:masquerade-v6", "IPv6 masquerade", .error),
            (["isolated_bridges"], "forward", "pier:isolation", "isolation between networks", .warning),
            // Unmarked traffic passes no other table's dropping forward chain (Pier's accept
            // there matches the mark): an error only while such a chain exists.
            (
                ["same_bridge"], "forward_mark", "pier:mark-from-bridge",
                "marking of container traffic for Pier's accept rule in other tables",
                firewall.foreignForward.contains { $0.drops != nil } ? .error : .warning
            ),
        ]
        return checks.compactMap { check in
            let used = check.sets.contains { name in firewall.elements.contains { $0.set == "inet pier \(name)" } }
            guard used, !(firewall.ruleComments[check.chain]?.contains(check.comment) ?? false) else { return nil }
            return Finding(
                check: "missing.pier_rule", severity: check.severity,
                subject: "inet pier \(check.chain) \"\(check.comment)\"",
                message: "\(check.what) is off for every network: the rule is missing from inet pier \(check.chain)",
                fix: "pier firewall reload (rebuilds Pier's tables from the cached attachments), or run any bridge ADD")
        }
    }

    /// DNAT elements without the portmap plugin's fixed rules are never consulted.
    func publishingRules() -> [Finding] {
        let ports = firewall.publishedPorts
        guard !ports.isEmpty else { return [] }
        var missing: [String] = []
        if !(firewall.ruleComments["prerouting"]?.contains("pier:publish") ?? false) {
            missing.append("inet pier prerouting \"pier:publish\"")
        }
        let published = firewall.ruleComments["published"] ?? []
        for map in Set(ports.map(\.map)).sorted() {
            // dnat_v4_bound is looked up by rule pier:publish-v4-bound, and so on.
            let comment = "pier:publish-" + map.dropFirst("dnat_".count).split(separator: "_").joined(separator: "-")
            if !published.contains(comment) { missing.append("inet pier published \"\(comment)\"") }
        }
        guard !missing.isEmpty else { return [] }
        return [
            Finding(
                check: "missing.publish_rules", severity: .error, subject: missing.joined(separator: ", "),
                message:
                    "\(ports.count) published port(s) cannot work: the rules that consult the DNAT maps are missing",
                fix: "pier firewall reload (rebuilds Pier's tables from the cached attachments)")
        ]
    }

    /// Ports a live attachment published (per its cached capability arguments) whose DNAT
    /// element is gone: the port silently stops answering.
    func missingPorts() -> [Finding] {
        let published = firewall.publishedPorts
        var findings: [Finding] = []
        for entry in index.cached where index.live.contains(entry.attachment) {
            guard entry.configList?.plugins.contains("portmap") ?? true else { continue }
            let tag = entry.attachment.ownerTag
            for mapping in entry.portMappings {
                let present = published.contains {
                    $0.owner == tag && $0.hostPort == mapping.hostPort && $0.protocol == mapping.protocol.lowercased()
                }
                if present { continue }
                findings.append(
                    Finding(
                        check: "missing.published_port", severity: .error,
                        subject: "\(mapping.protocol) \(mapping.hostPort)",
                        message:
                            "\(describe(entry.attachment)) publishes \(mapping.protocol) port \(mapping.hostPort) → \(mapping.containerPort), but no DNAT element in inet pier carries it",
                        fix: "pier firewall reload (puts it back from the cached attachment), or recreate the container"
                    ))
            }
        }
        return findings
    }

    /// Live bridge attachments whose host veth is gone: someone deleted the container's interface
    /// (a veth pair dies as a whole), so the container is cut off while everything else looks fine.
    func missingInterfaces() -> [Finding] {
        let present = Set(host.attachedLinks.map(\.attachment))
        return index.cached.filter { index.live.contains($0.attachment) && $0.usesHostVeth }
            .filter { !present.contains($0.attachment) }
            .map { entry in
                Finding(
                    check: "missing.interface", severity: .error, subject: "\(describe(entry.attachment))",
                    message:
                        "\(describe(entry.attachment)) has no host veth: its interface \(entry.attachment.ifName) was deleted, the container is cut off from network \(entry.attachment.network)",
                    fix: "recreate the attachment: pier rm -f, then pier run again")
            }
    }

    /// Pier's bridges (named in configs, cached configs or `same_bridge`) that have no ports,
    /// and per-network elements whose bridge is gone.
    func bridges() -> [Finding] {
        var names = Set(networks.compactMap(\.bridge))
        for key in firewall.keys(of: "same_bridge") {
            if case .interfaceName(let name) = key.first { names.insert(name) }
        }
        var findings: [Finding] = []
        for name in names.sorted() {
            guard let bridge = host.link(named: name) else { continue }
            guard bridge.kind == .bridge, host.ports(of: bridge.index).isEmpty else { continue }
            findings.append(
                Finding(
                    check: "stale.bridge", severity: .warning, subject: name,
                    message: "bridge \(name) has no ports: no container uses it",
                    fix:
                        "pier gc removes unused bridges, or: ip link delete \(name) (its network's inet pier elements go with pier gc)"
                ))
        }
        for element in firewall.elements
        where element.set.hasSuffix(" same_bridge") || element.set.hasSuffix(" isolated_bridges") {
            guard let bridge = element.key.first, host.link(named: bridge) == nil else { continue }
            findings.append(
                Finding(
                    check: "stale.element", severity: .warning, subject: "\(element.set) \(element.nftKey)",
                    message: "\(element.set) names bridge \(bridge), which does not exist",
                    fix: "pier gc, or: nft delete element \(element.set) { \(element.nftKey) }"))
        }
        return findings
    }

    /// `net=<network> <containerID>/<ifname>` (or `net=<network> #<hash>`) is an attachment's
    /// tag; `net=<network>` and `net=<network> <subnet>` are the network's own.
    func isAttachmentTag(_ tag: String) -> Bool {
        guard tag.hasPrefix("net="), let space = tag.firstIndex(of: " ") else { return false }
        let rest = String(tag[tag.index(after: space)...])
        return IPPrefix(rest) == nil && (rest.hasPrefix("#") || rest.contains("/"))
    }

    func describe(_ attachment: Attachment) -> String {
        "\(attachment.network) \(shortID(attachment.containerID))/\(attachment.ifName)"
    }
}
