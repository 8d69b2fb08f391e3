import CNI
import NetNS
import Netlink
import PluginSupport

/// Which attachments are alive: the evidence is the container's network namespace, found
/// through the runtime's records or the libcni cache (the netns the ADD ran with). Host veths
/// of plugins run without a runtime (no record, no cache) count as alive while their peer
/// sits in another namespace.
struct AttachmentIndex {
    let cached: [CachedResult]
    let containers: [ContainerInfo]
    let host: NamespaceSnapshot
    private(set) var live: Set<Attachment> = []
    /// The namespace path each attachment was made in, when anything records it.
    private(set) var netnsPaths: [Attachment: String] = [:]

    init(cached: [CachedResult], containers: [ContainerInfo], host: NamespaceSnapshot) {
        self.cached = cached
        self.containers = containers
        self.host = host
        var exists: [String: Bool] = [:]
        func alive(_ path: String) -> Bool {
            if let known = exists[path] { return known }
            let result = namespaceExists(path)
            exists[path] = result
            return result
        }
        for entry in cached where !entry.netns.isEmpty {
            netnsPaths[entry.attachment] = entry.netns
        }
        for container in containers {
            for attachment in container.attachments {
                if let path = container.netnsPath { netnsPaths[attachment] = path }
            }
        }
        for (attachment, path) in netnsPaths where alive(path) { live.insert(attachment) }
        for (link, attachment) in host.attachedLinks where netnsPaths[attachment] == nil && link.linkNetnsID != nil {
            live.insert(attachment)
        }
    }

    var liveOwnerTags: Set<String> { Set(live.map(\.ownerTag)) }

    /// Lease records carry the container ID and interface name (legacy ones only the ID).
    func isLive(network: String, containerID: String, ifName: String) -> Bool {
        if !ifName.isEmpty {
            return live.contains(Attachment(network: network, containerID: containerID, ifName: ifName))
        }
        return live.contains { $0.network == network && $0.containerID == containerID }
    }
}
