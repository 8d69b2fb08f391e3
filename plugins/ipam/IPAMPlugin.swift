import CNI
import IPAM

/// The verbs of the `ipam` plugin: request parsing here, allocation in the IPAM module.
struct IPAMPlugin: CNIPlugin {
    var about: String { "Pier ipam plugin (host-local and static compatible)" }

    func add(_ request: CNIRequest) throws -> CNIResult {
        let manager = try AddressManager(config: settings(request))
        return try manager.add(attachment(request)).cniResult(version: request.cniVersion)
    }

    func delete(_ request: CNIRequest) throws {
        try AddressManager(config: settings(request)).release(attachment(request))
    }

    func check(_ request: CNIRequest) throws {
        try AddressManager(config: settings(request)).check(attachment(request))
    }

    func garbageCollect(_ request: CNIRequest) throws {
        // Without either attachment key there is no statement of what is valid; releasing
        // everything on a malformed request would be far worse than doing nothing.
        guard let valid = request.config.validAttachments else {
            cniLog("ipam: GC without cni.dev/valid-attachments; nothing released")
            return
        }
        let released = try AddressManager(config: settings(request)).collectGarbage(
            keeping: valid.map { Attachment(containerID: $0.containerID, ifname: $0.ifName) })
        for lease in released { cniLog("ipam: GC released \(lease)") }
    }

    func status(_ request: CNIRequest) throws {
        try AddressManager(config: settings(request)).status()
    }

    private func attachment(_ request: CNIRequest) -> Attachment {
        Attachment(containerID: request.containerID, ifname: request.ifName)
    }

    /// Settings from stdin plus the CNI_ARGS `IP=`/`GATEWAY=` keys and the version-converted
    /// prevResult (static CHECK compares against it).
    private func settings(_ request: CNIRequest) throws -> IPAMSettings {
        let args = try request.environment.args()
        var settings = try IPAMSettings(
            json: request.stdin, environmentIPs: args["IP"].map { [$0] } ?? [],
            environmentGateways: args["GATEWAY"].map { [$0] } ?? [])
        if let previous = request.prevResult { settings.previousAddresses = previous.ips.map(\.address) }
        return settings
    }
}
