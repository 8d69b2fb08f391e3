import CNI
import IPAddressing
import PluginSupport

/// The `tuning` plugin (chained only): sets network sysctls of the container's namespace and
/// the MAC, MTU, promiscuous and all-multicast modes and transmit queue length of `CNI_IFNAME`,
/// and puts back on DEL whatever it changed. Sysctls are written through /proc/sys on a thread
/// inside the namespace; link settings go over netlink.
struct TuningPlugin: CNIPlugin {
    /// Where every kernel access goes (`PluginKernel.system` in production).
    var kernel: PluginKernel = .system

    var about: String { "Pier tuning plugin" }

    func add(_ request: CNIRequest) throws -> CNIResult {
        let settings = try TuningSettings(request)
        guard var result = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin")
        }
        result.cniVersion = request.cniVersion
        guard !settings.isEmpty else { return result }
        if !settings.sysctls.isEmpty { try SysctlAllowlist.load()?.check(settings.sysctls.map(\.key)) }

        let container = try ContainerTuning(request, kernel: kernel)
        let plan = try container.plan(settings)
        let store = SavedSettingsStore(directory: settings.dataDirectory)
        let earlier = try store.load(containerID: request.containerID, ifName: request.ifName)
        if !plan.steps.isEmpty {
            // Saved before the first change, so even a plugin killed halfway can be undone by DEL.
            var originals = plan.originals
            if let earlier { originals.keepingEarlier(earlier) }
            try store.save(originals)
            do {
                try container.run(plan.steps)
            } catch {
                if let earlier { try? store.save(earlier) } else { try? store.remove(request) }
                throw error
            }
        }
        if let mac = settings.mac { result.setMAC(mac, ifName: request.ifName, netns: request.netns) }
        return result
    }

    /// Restores what ADD saved and forgets it. Restoring is best effort: a failure is logged and
    /// DEL goes on, since the attachment is going away and a runtime retrying DEL forever over an
    /// interface that is about to disappear helps nobody. Without a namespace (or with one that
    /// is gone) the interface went with it, and only the file is removed.
    func delete(_ request: CNIRequest) throws {
        let directory =
            (try? TuningSettings.dataDirectory(request.config.raw)) ?? TuningSettings.defaultDataDirectory
        let store = SavedSettingsStore(directory: directory)
        if let saved = try store.load(containerID: request.containerID, ifName: request.ifName),
            let container = try ContainerTuning.ifPresent(request, kernel: kernel)
        {
            for failure in container.restore(saved) { cniLog("tuning: could not restore \(failure)") }
        }
        try store.remove(request)
    }

    func check(_ request: CNIRequest) throws {
        let settings = try TuningSettings(request)
        guard request.prevResult != nil else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin")
        }
        guard !settings.isEmpty else { return }
        try ContainerTuning(request, kernel: kernel).verify(settings)
    }

    /// Forgets saved settings of this network's attachments that are no longer valid. Their
    /// namespaces are unknown here, so nothing is restored: the containers are gone.
    func garbageCollect(_ request: CNIRequest) throws {
        guard let validAttachments = request.config.validAttachments else { return }
        let valid = Set(validAttachments.map { "\($0.containerID)/\($0.ifName)" })
        let store = SavedSettingsStore(directory: try TuningSettings.dataDirectory(request.config.raw))
        for saved in try store.all()
        where saved.network == request.config.name && !valid.contains("\(saved.containerID)/\(saved.ifName)") {
            try store.remove(containerID: saved.containerID, ifName: saved.ifName)
        }
    }
}

extension SavedSettingsStore {
    fileprivate func remove(_ request: CNIRequest) throws {
        try remove(containerID: request.containerID, ifName: request.ifName)
    }
}

extension CNIResult {
    /// The container interface's new MAC; every other field of the previous result stays.
    fileprivate mutating func setMAC(_ mac: MACAddress, ifName: String, netns: String) {
        let inSandbox = interfaces.indices.filter { interfaces[$0].name == ifName && interfaces[$0].sandbox == netns }
        let targets = inSandbox.isEmpty ? interfaces.indices.filter { interfaces[$0].name == ifName } : inSandbox
        for index in targets { interfaces[index].mac = mac.description }
    }
}
