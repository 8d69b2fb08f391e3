import CNI
import ClusterStore
import Glibc
import IPAddressing
import NameService

/// The `names` plugin (chained only, after an interface plugin such as `bridge`): registers the
/// container's name, aliases and hostname with the addresses of its interface on this network,
/// makes sure the host's name server (`pier-dns`) serves the network on its gateway addresses,
/// and points the result's DNS at those gateways. DEL and GC forget what ADD registered.
struct NamesPlugin: CNIPlugin {
    var about: String { "Pier names plugin (DNS for container names on a network)" }

    func add(_ request: CNIRequest) throws -> CNIResult {
        let config = try NamesConfig(request)
        guard var result = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin")
        }
        result.cniVersion = request.cniVersion
        let record = try Self.record(request, config: config, result: result)
        let store = NameRecordStore(directory: config.dataDirectory)
        do {
            try store.withLock {
                let earlier = try store.record(
                    network: record.network, containerID: record.containerID, ifName: record.ifName)
                try store.write(record)
                do {
                    try NameServerControl.reload(
                        store, network: record.network, launch: (PluginExec.ownExecutable, DaemonTable.nameServer))
                } catch {
                    // Nothing half-done: the attachment's earlier record (if any) or none at all.
                    if let earlier { try? store.write(earlier) } else { try? Self.remove(record, from: store) }
                    _ = NameServerControl.request("reload \(record.network)", socketPath: store.socketPath)
                    throw error
                }
            }
        } catch let error as NameServiceError {
            throw CNIError(.tryAgainLater, "names: \(error.message)")
        } catch let error as CNIError {
            throw error
        } catch {
            throw CNIError(.ioFailure, "names: \(error)")
        }
        if let store = config.store {
            do {
                try SharedNames.publish(record, store: store.config)
            } catch {
                // Nothing half-done: this host forgets the record too.
                let local = NameRecordStore(directory: config.dataDirectory)
                try? local.withLock {
                    try? Self.remove(record, from: local)
                    _ = NameServerControl.request("reload \(record.network)", socketPath: local.socketPath)
                }
                throw CNIError(.tryAgainLater, "names: sharing the names through the cluster store: \(error)")
            }
        }
        var nameservers = record.gateways.map(\.description)
        for server in result.dns.nameservers where !nameservers.contains(server) { nameservers.append(server) }
        result.dns.nameservers = nameservers
        var search = [config.domainName]
        for domain in config.search + config.containerSearch + result.dns.search where !search.contains(domain) {
            search.append(domain)
        }
        result.dns.search = search
        for option in config.options + config.containerOptions where !result.dns.options.contains(option) {
            result.dns.options.append(option)
        }
        return result
    }

    /// Forgets the attachment's record; never fails because it (or the server) is gone.
    func delete(_ request: CNIRequest) throws {
        if let storeReader = try? request.config.reader.reader("store"),
            let storeConfig = try? ClusterStoreConfig(storeReader)
        {
            do {
                try SharedNames.withdraw(
                    network: request.config.name, containerID: request.containerID, ifName: request.ifName,
                    store: storeConfig)
            } catch {
                throw CNIError(.tryAgainLater, "names: removing the names from the cluster store: \(error)")
            }
        }
        let store = NameRecordStore(directory: try NamesConfig.dataDirectory(request))
        do {
            try store.withLock {
                try store.remove(network: request.config.name, containerID: request.containerID, ifName: request.ifName)
                // The server re-reads on its own within a second if this fails; DEL is done.
                do {
                    try NameServerControl.reload(store, network: request.config.name, launch: nil)
                } catch {
                    cniLog("names: \(error)")
                }
            }
        } catch {
            throw CNIError(
                .ioFailure, "names: removing the record of \(request.containerID)/\(request.ifName): \(error)")
        }
    }

    /// The record matches what ADD would write now, and a server answers for the network.
    func check(_ request: CNIRequest) throws {
        let config = try NamesConfig(request)
        guard let result = request.prevResult else {
            throw CNIError(.invalidNetworkConfig, "must be called as chained plugin")
        }
        let wanted = try Self.record(request, config: config, result: result)
        let store = NameRecordStore(directory: config.dataDirectory)
        let found: NameRecord?
        do {
            found = try store.record(network: wanted.network, containerID: wanted.containerID, ifName: wanted.ifName)
        } catch {
            throw CNIError(.ioFailure, "names: reading the record: \(error)")
        }
        guard let found else {
            throw CNIError(
                .internalError, "names: \(wanted.containerID)/\(wanted.ifName) is not registered on \(wanted.network)")
        }
        guard found == wanted else {
            throw CNIError(
                .internalError, "names: the registered record differs from the config",
                details: "registered \(found.names) \(found.addresses), expected \(wanted.names) \(wanted.addresses)")
        }
        guard NameServerControl.request("ping", socketPath: store.socketPath) == "ok" else {
            throw CNIError(.internalError, "names: no name server answers on \(store.socketPath)")
        }
    }

    /// Forgets the records of this network's attachments that are no longer valid.
    func garbageCollect(_ request: CNIRequest) throws {
        guard let validAttachments = request.config.validAttachments else { return }
        let valid = Set(
            validAttachments.map { NameRecordStore.fileName(containerID: $0.containerID, ifName: $0.ifName) })
        let store = NameRecordStore(directory: try NamesConfig.dataDirectory(request))
        var failures = CNIErrorList()
        do {
            try store.withLock {
                for record in store.records(network: request.config.name)
                where !valid.contains(NameRecordStore.fileName(containerID: record.containerID, ifName: record.ifName))
                {
                    failures.attempt { try Self.remove(record, from: store) }
                }
                do {
                    try NameServerControl.reload(store, network: request.config.name, launch: nil)
                } catch {
                    cniLog("names: \(error)")
                }
            }
        } catch {
            failures.record(error)
        }
        if let error = failures.combined("names GC") { throw error }
    }

    private static func remove(_ record: NameRecord, from store: NameRecordStore) throws {
        try store.remove(network: record.network, containerID: record.containerID, ifName: record.ifName)
    }

    /// The record an ADD writes: the container interface's addresses from prevResult (entries
    /// whose interface is in a sandbox, or that name none), their gateways as listen addresses.
    static func record(_ request: CNIRequest, config: NamesConfig, result: CNIResult) throws(CNIError) -> NameRecord {
        let ips = result.ips.filter { ip in
            guard let index = ip.interface else { return true }
            guard result.interfaces.indices.contains(index) else { return false }
            return !(result.interfaces[index].sandbox ?? "").isEmpty
        }
        guard !ips.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "names: prevResult has no container address to register")
        }
        var addresses: [IPAddress] = []
        var gateways: [IPAddress] = []
        for ip in ips {
            if !addresses.contains(ip.address.address) { addresses.append(ip.address.address) }
            if let gateway = ip.gateway, !gateways.contains(gateway) { gateways.append(gateway) }
        }
        guard !gateways.isEmpty else {
            throw CNIError(
                .invalidNetworkConfig, "names: prevResult has no gateway to serve names on",
                details: "the name server listens on the network's gateway: chain after bridge with isGateway")
        }
        return NameRecord(
            network: request.config.name, containerID: request.containerID, ifName: request.ifName,
            names: try AttachmentNames.names(request), addresses: addresses, gateways: gateways,
            domainName: config.domainName, isInternal: config.isInternal, upstreams: config.upstreams,
            containerUpstreams: config.isInternal ? [] : config.containerUpstreams, store: config.store?.json)
    }
}
