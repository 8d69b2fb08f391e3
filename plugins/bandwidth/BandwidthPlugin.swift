import CNI
import NetNS
import Netlink
import PluginSupport

/// The `bandwidth` plugin (chained only): shapes what reaches the container with a TBF at the
/// root of the host end of its veth, and what the container sends by redirecting the host
/// end's ingress to an IFB device whose root is a TBF.
struct BandwidthPlugin: CNIPlugin {
    /// Every kernel access goes through here, so tests can run the plugin against a fake.
    var kernel: PluginKernel = .system

    var about: String { "Pier bandwidth plugin" }

    /// Chained plugins need prevResult, which CNI 0.3.0 introduced.
    var supportedVersions: [String] { CNIVersion.all.filter { $0 != "0.1.0" && $0 != "0.2.0" } }

    func add(_ request: CNIRequest) throws -> CNIResult {
        guard var result = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin")
        }
        result.cniVersion = request.cniVersion
        let (ingress, egress) = try BandwidthLimits.of(request).resolved()
        let attachment = Attachment(request)
        let host = try kernel.hostNetlink()
        let ifb = try existingIFB(of: attachment, host: host)
        // Nothing to shape: touch nothing, unless an earlier ADD of this attachment shaped it.
        guard ingress != nil || egress != nil || ifb != nil else { return result }

        let veth = try hostVeth(request, host: host)
        let mtu = veth.mtu ?? 1500
        do {
            if let ingress {
                try host.replaceRootTokenBucket(index: veth.index, ingress.tokenBucket(mtu: mtu))
            } else {
                try removeRootTokenBucket(of: veth.index, host: host)
            }
            try removeRedirect(from: veth.index, host: host)
            if let ifb { try ignoringMissing { try host.deleteLink(index: ifb.index) } }
            if let egress {
                let created = try createIFB(for: attachment, mtu: mtu, host: host)
                try host.replaceRootTokenBucket(index: created.index, egress.tokenBucket(mtu: mtu))
                try host.addIngressQdisc(index: veth.index)
                try host.addRedirectFilter(index: veth.index, to: created.index)
                result.interfaces.append(CNIResult.Interface(name: created.name, mac: created.mac?.description))
            }
        } catch {
            // Nothing half-done: the veth gets its default qdiscs back and the IFB goes.
            try? removeRedirect(from: veth.index, host: host)
            try? removeRootTokenBucket(of: veth.index, host: host)
            if let left = try? host.linkIfPresent(named: Self.ifbName(attachment)), left.alias == Self.alias(attachment)
            {
                try? host.deleteLink(index: left.index)
            }
            throw error
        }
        return result
    }

    func delete(_ request: CNIRequest) throws {
        // Found from the attachment alone: no prevResult, config values or netns needed. The
        // host veth's qdiscs die with the veth; they are removed here only while it is there.
        let attachment = Attachment(request)
        var failures: [String] = []
        let host = try kernel.hostNetlink()
        if !request.netns.isEmpty {
            do {
                if let veth = try? hostVeth(request, host: host) {
                    try removeRedirect(from: veth.index, host: host)
                    try removeRootTokenBucket(of: veth.index, host: host)
                }
            } catch {
                failures.append("\(error)")
            }
        }
        do {
            // A link of that name that is not this attachment's IFB is not ours to delete.
            if let ifb = try host.linkIfPresent(named: Self.ifbName(attachment)), ifb.kind == .ifb,
                ifb.alias == Self.alias(attachment)
            {
                try ignoringMissing { try host.deleteLink(index: ifb.index) }
            }
        } catch {
            failures.append("\(error)")
        }
        if !failures.isEmpty {
            throw CNIError(.internalError, "bandwidth DEL incomplete: " + failures.joined(separator: "; "))
        }
    }

    func check(_ request: CNIRequest) throws {
        guard request.prevResult != nil else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin")
        }
        let (ingress, egress) = try BandwidthLimits.of(request).resolved()
        let attachment = Attachment(request)
        let host = try kernel.hostNetlink()
        let veth = try hostVeth(request, host: host)
        let mtu = veth.mtu ?? 1500
        let root = try host.qdisc(index: veth.index, parent: QdiscHandle.root)
        if let ingress {
            try expectTokenBucket(root, ingress.tokenBucket(mtu: mtu), on: veth.name)
        } else if let root, Self.isOurs(root) {
            throw CNIError(.internalError, "\(veth.name) has a TBF root qdisc but ingress is not shaped")
        }
        let ifb = try existingIFB(of: attachment, host: host)
        guard let egress else {
            if let ifb { throw CNIError(.internalError, "\(ifb.name) exists but egress is not shaped") }
            return
        }
        guard let ifb else {
            throw CNIError(.internalError, "IFB \(Self.ifbName(attachment)) for egress shaping is missing")
        }
        guard ifb.isUp else { throw CNIError(.internalError, "IFB \(ifb.name) is down") }
        let ifbRoot = try host.qdisc(index: ifb.index, parent: QdiscHandle.root)
        try expectTokenBucket(ifbRoot, egress.tokenBucket(mtu: mtu), on: ifb.name)
        let redirects = try host.filters(index: veth.index, parent: QdiscHandle.ingress)
        guard redirects.contains(where: { $0.redirectIndex == ifb.index }) else {
            throw CNIError(.internalError, "no filter on \(veth.name) ingress redirects to \(ifb.name)")
        }
    }

    func garbageCollect(_ request: CNIRequest) throws {
        let valid = Set(
            (request.config.validAttachments ?? []).map {
                Self.alias(Attachment(network: request.config.name, containerID: $0.containerID, ifName: $0.ifName))
            })
        let networkPrefix = Self.aliasPrefix + request.config.name + ":"
        let host = try kernel.hostNetlink()
        var failures: [String] = []
        for link in try host.links() where link.kind == .ifb {
            guard let alias = link.alias, alias.hasPrefix(networkPrefix), !valid.contains(alias) else { continue }
            do { try ignoringMissing { try host.deleteLink(index: link.index) } } catch { failures.append("\(error)") }
        }
        if !failures.isEmpty {
            throw CNIError(.internalError, "bandwidth GC incomplete: " + failures.joined(separator: "; "))
        }
    }

    // MARK: Names

    /// `bwp` (as the reference) + 8 hex digits of the attachment: found again on DEL from the
    /// attachment alone, also when the container's namespace is gone.
    static func ifbName(_ attachment: Attachment) -> String {
        "bwp" + hex32(stableHash(attachment.network + "/" + attachment.containerID + "/" + attachment.ifName))
    }

    static let aliasPrefix = "pier-bandwidth:"

    /// Marks the IFB as this attachment's, so a name collision is detected and GC finds it. Not
    /// `Attachment.linkAlias`: that marks host veths, which other plugins' GC deletes.
    static func alias(_ attachment: Attachment) -> String {
        aliasPrefix + "\(attachment.network):\(attachment.containerID):\(attachment.ifName)"
    }

    // MARK: Kernel work

    /// The attachment's IFB, nil when there is none; a link of that name that is not ours is
    /// an error rather than something to reuse or delete.
    private func existingIFB(of attachment: Attachment, host: RouteNetlink) throws -> Link? {
        guard let link = try host.linkIfPresent(named: Self.ifbName(attachment)) else { return nil }
        guard link.kind == .ifb, link.alias == Self.alias(attachment) else {
            throw CNIError(
                .internalError, "link \(link.name) exists and is not this attachment's IFB",
                details: "alias \(link.alias ?? "none"), kind \(link.kind?.rawValue ?? "none")")
        }
        return link
    }

    private func createIFB(for attachment: Attachment, mtu: UInt32, host: RouteNetlink) throws -> Link {
        let name = Self.ifbName(attachment)
        try host.createIFB(name: name, mtu: mtu)
        let link = try host.link(named: name)
        do {
            try host.setAlias(index: link.index, Self.alias(attachment))
        } catch {
            // Without the alias nothing would recognise it as ours again.
            try? host.deleteLink(index: link.index)
            throw error
        }
        return link
    }

    /// The host end of the container interface's veth: the container interface's IFLA_LINK
    /// names its peer's index, and that peer must name the container interface back (an index
    /// alone could belong to an unrelated link of this namespace). Works after any interface
    /// plugin that makes a veth, whatever it names the host end.
    private func hostVeth(_ request: CNIRequest, host: RouteNetlink) throws -> Link {
        let container = try kernel.netlink(try kernel.openNamespace(request.netns))
        guard let inside = try container.linkIfPresent(named: request.ifName) else {
            throw CNIError(.invalidNetworkConfig, "container interface \(request.ifName) not found in \(request.netns)")
        }
        let notVeth = CNIError(
            .invalidNetworkConfig, "container interface \(request.ifName) has no veth peer in this namespace",
            details: "the bandwidth plugin shapes veth-based attachments")
        guard inside.kind == .veth, let peerIndex = inside.linkIndex, peerIndex > 0 else { throw notVeth }
        guard let peer = try linkIfPresent(index: peerIndex, host: host), peer.kind == .veth,
            peer.linkIndex == inside.index
        else { throw notVeth }
        return peer
    }

    private func linkIfPresent(index: Int32, host: RouteNetlink) throws -> Link? {
        do { return try host.link(index: index) } catch {
            if error.isNotFound { return nil }
            throw error
        }
    }

    private static func isOurs(_ qdisc: Qdisc) -> Bool {
        qdisc.kind == "tbf" && qdisc.handle == QdiscHandle.tokenBucketRoot
    }

    private func removeRootTokenBucket(of index: Int32, host: RouteNetlink) throws {
        guard let root = try host.qdisc(index: index, parent: QdiscHandle.root), Self.isOurs(root) else { return }
        try ignoringMissing { try host.deleteQdisc(index: index, parent: QdiscHandle.root) }
    }

    /// Deleting the ingress qdisc deletes the redirect filter with it.
    private func removeRedirect(from index: Int32, host: RouteNetlink) throws {
        guard try host.qdisc(index: index, parent: QdiscHandle.ingressParent)?.kind == "ingress" else { return }
        try ignoringMissing { try host.deleteQdisc(index: index, parent: QdiscHandle.ingressParent) }
    }

    private func expectTokenBucket(_ qdisc: Qdisc?, _ expected: TokenBucket, on device: String) throws {
        guard let qdisc, Self.isOurs(qdisc), let bucket = qdisc.tokenBucket else {
            throw CNIError(.internalError, "\(device) has no TBF root qdisc (expected \(expected))")
        }
        // The kernel keeps the burst as a time in 64 ns ticks: allow that rounding.
        let tolerance = max(UInt64(expected.burst) / 100, 64)
        let burstDifference = UInt64(bucket.burst).distance(to: UInt64(expected.burst)).magnitude
        guard bucket.rate == expected.rate, bucket.limit == expected.limit, burstDifference <= tolerance else {
            throw CNIError(.internalError, "\(device) TBF is \(bucket), expected \(expected)")
        }
    }
}
