import CNI
import Glibc
import PierState
import Services

extension ContainerManager {
    /// What one `gc` pass did and what it could not do.
    public struct GarbageReport: Sendable {
        public var removedContainers: [String] = []
        public var errors: [String] = []
    }

    /// `pier gc`: finishes containers a dead `pier` left half-made or half-removed (and `--rm` containers
    /// whose reaper is gone), then runs libcni's GC for every network with the attachments of the
    /// containers that remain as the valid set: stale cached attachments get a DEL, plugins a GC.
    public func garbageCollect() throws(RuntimeError) -> GarbageReport {
        try requireRoot()
        let lock = try store.lock()
        defer { lock.release() }
        var report = GarbageReport()
        // Holding the lock, no other pier is mid-operation: `creating`/`removing` are leftovers.
        for record in store.all() {
            let stale =
                record.status == .creating || record.status == .removing
                || (record.status == .started && record.autoRemove && !record.isRunning)
            guard stale else { continue }
            do {
                report.errors += try tearDown(record, force: true)
                report.removedContainers.append(record.name)
            } catch {
                report.errors.append("\(error)")
            }
        }

        removeAbandonedFiles()
        let remaining = store.all()
        // Members whose container is gone (a `pier` killed between removing it and leaving its
        // services) leave them now, so their addresses get no more connections.
        let known = Set(remaining.map(\.id))
        // (On an overlay the record also lists other hosts' members: leaving in their name
        // changes nothing, as only this host's members are written to the store.)
        for service in services.all() {
            for member in service.members where !known.contains(member.containerID) {
                report.errors += leaveServices(member.containerID)
            }
        }
        // The cache is shared with other runtimes (another `--root`, cnitool): an attachment whose
        // namespace still exists may be theirs and alive, so it is valid too.
        let liveElsewhere = executor.cache.all().filter(isLive)
        // A service's VIP lease (`service-<S>`/`vip`) is cached like an attachment; its `tasks.S`
        // names record is not, and stays while the service does.
        let serviceRecords = services.all()
        func valid(for network: String) -> [Attachment] {
            var attachments: [Attachment] = []
            for service in serviceRecords where service.network == network {
                let identity = ServiceNetwork.vipAttachment(service: service.name)
                for ifName in [identity.ifName, ServiceApplier.tasksInterface] {
                    attachments.append(Attachment(network: network, containerID: identity.containerID, ifName: ifName))
                }
            }
            for record in remaining {
                attachments += record.attachments.map(record.identity(of:)).filter { $0.network == network }
            }
            for entry in liveElsewhere where entry.networkName == network {
                attachments.append(
                    Attachment(network: network, containerID: entry.request.containerID, ifName: entry.request.ifName))
            }
            return attachments
        }
        var seen = Set<String>()
        for entry in configs.entries() {
            guard let list = entry.list, !seen.contains(list.name) else { continue }
            seen.insert(list.name)
            report.errors += executor.garbageCollect(list, valid: valid(for: list.name)).map { "\($0)" }
        }
        // Attachments of networks whose config is gone can still be deleted with the cached config.
        for entry in executor.cache.all() where !seen.contains(entry.networkName) {
            let keep = valid(for: entry.networkName).contains(
                Attachment(
                    network: entry.networkName, containerID: entry.request.containerID, ifName: entry.request.ifName))
            guard !keep, let list = try? NetworkConfigList(bytes: entry.config) else { continue }
            do {
                try executor.delete(list, entry.request)
            } catch {
                report.errors.append("\(error)")
            }
        }
        return report
    }

    /// Temporaries of atomic writes whose writer died, and container directories whose record was never
    /// completely written: what a `pier` killed at the wrong instant leaves besides records.
    private func removeAbandonedFiles() {
        for directory in [executor.cache.directory] + Files.list(store.containersDirectory).map(store.directory(of:)) {
            for name in Files.list(directory) {
                guard let pid = FileSystem.temporaryWriter(of: name) else { continue }
                if kill(pid, 0) != 0 && errno == ESRCH { Files.remove(directory + "/" + name) }
            }
        }
        for id in Files.list(store.containersDirectory) where store.load(id: id) == nil {
            let directory = store.directory(of: id)
            if Files.list(directory).allSatisfy(StateLayout.isAuxiliaryFile) {
                store.remove(id: id)
            }
        }
    }
}
