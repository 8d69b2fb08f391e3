import CNI
import IPAddressing
import PierState

/// `pier network create|rm|prune|connect|disconnect`: user-defined networks as conflists in the config
/// directory, and attaching running containers to them. Every change holds the store lock, so two
/// `network create` never pick the same subnet and a container's record never loses an attachment.
extension ContainerManager {
    /// The file name pier gives a network it creates: after the shipped `10`–`40` ones.
    static func conflistName(for network: String) -> String { "60-\(network)\(ConfigDirectory.listExtension)" }

    /// Writes the network's conflist; returns its path. Fills in a subnet when the driver wants one and
    /// none was given, and an IPv6 one for `--ipv6`.
    public func createNetwork(_ spec: NetworkSpec) throws(RuntimeError) -> String {
        var spec = spec
        do { try CNIValidation.validateNetworkName(spec.name) } catch {
            throw RuntimeError.invalidName(
                spec.name,
                reason: "a network name starts with a letter or digit, followed by letters, digits, '_', '.' or '-'")
        }
        let lock = try store.lock()
        defer { lock.release() }
        let directory = ConfigDirectory(path: configs.directory)
        if let existing = directory.entry(network: spec.name) {
            throw RuntimeError.failed("network with name \(spec.name) already exists (\(existing.path))")
        }
        var taken: [(network: String, prefix: IPPrefix)] = []
        for entry in directory.entries() {
            guard let list = entry.list else { continue }
            taken += NetworkTemplates.subnets(of: list).map { (list.name, $0) }
        }
        for (index, request) in spec.subnets.enumerated() {
            if let other = taken.first(where: { $0.prefix.overlaps(request.subnet) }) {
                throw RuntimeError.failed(
                    "subnet \(request.subnet.network) overlaps \(other.prefix) of network \(other.network)")
            }
            if let other = spec.subnets[..<index].first(where: { $0.subnet.overlaps(request.subnet) }) {
                throw RuntimeError.invalidArgument("--subnet \(request.subnet) overlaps --subnet \(other.subnet)")
            }
        }
        if spec.driver.picksSubnet {
            let avoid = taken.map(\.prefix) + SubnetPool.hostPrefixes()
            if spec.subnets.isEmpty {
                guard let picked = SubnetPool.pickIPv4(avoiding: avoid) else {
                    throw RuntimeError.failed(
                        "all predefined address pools are in use (give --subnet); pools: 172.17-31.0.0/16, 192.168.0-240.0/20"
                    )
                }
                spec.subnets.append(SubnetRequest(subnet: picked))
            }
            if spec.ipv6 && !spec.subnets.contains(where: { $0.subnet.family == .v6 }) {
                guard let picked = SubnetPool.pickIPv6(network: spec.name, avoiding: avoid) else {
                    throw RuntimeError.failed("no free IPv6 /64 for \(spec.name): give --subnet")
                }
                spec.subnets.append(SubnetRequest(subnet: picked))
            }
        }
        let nameService = (try? executor.find(NetworkTemplates.nameServicePluginType)) != nil
        let bytes = try NetworkTemplates.conflist(spec, nameService: nameService).encodedBytes + Array("\n".utf8)
        // What libcni will read back must parse as a list of this name.
        do { _ = try NetworkConfigList(bytes: bytes) } catch {
            throw RuntimeError.failed("generated config for \(spec.name) is invalid: \(error)")
        }
        try Files.makeDirectories(configs.directory)
        let name = ContainerManager.conflistName(for: spec.name)
        let created: Bool
        do {
            created = try FileSystem.createExclusively(directory: configs.directory, name: name, contents: bytes)
        } catch {
            throw RuntimeError.failed("writing \(configs.directory)/\(name): \(error)")
        }
        guard created else { throw RuntimeError.failed("\(configs.directory)/\(name) already exists") }
        return configs.directory + "/" + name
    }

    /// Containers with an attachment to `network`.
    public func containers(on network: String) -> [ContainerRecord] {
        store.all().filter { record in record.attachments.contains { $0.network == network } }
    }

    /// Live cached attachments to `network` that no container of this root owns: another root's
    /// containers, a cnitool ADD. Named `<container ID>/<interface>`.
    func foreignAttachments(to network: String) -> [String] {
        let own = Set(store.all().map(\.id))
        return executor.cache.all().filter { entry in
            entry.networkName == network && !own.contains(entry.request.containerID) && isLive(entry)
        }.map { "\($0.request.containerID)/\($0.request.ifName)" }
    }

    /// `network rm`: only networks pier created; refused while containers are attached unless `force`,
    /// which disconnects them first. Returns warnings (detachments that failed).
    @discardableResult
    public func removeNetwork(_ name: String, force: Bool) throws(RuntimeError) -> [String] {
        let lock = try store.lock()
        defer { lock.release() }
        return try removeNetworkLocked(name, force: force)
    }

    private func removeNetworkLocked(_ name: String, force: Bool) throws(RuntimeError) -> [String] {
        guard let entry = ConfigDirectory(path: configs.directory).entry(network: name), let list = entry.list else {
            throw RuntimeError.unknownNetwork(name, known: configs.networkNames(), directory: configs.directory)
        }
        guard NetworkTemplates.metadata(of: list) != nil else {
            throw RuntimeError.failed(
                "network \(name) was not created by `pier network create` (\(entry.path)): remove that file yourself")
        }
        let attached = containers(on: name)
        if !attached.isEmpty && !force {
            throw RuntimeError.failed(
                "network \(name) has active endpoints: " + attached.map(\.name).joined(separator: ", ")
                    + " (pier network disconnect, or network rm -f)")
        }
        // Not pier's to DEL (another root's or another runtime's): removing the config under them is refused.
        let foreign = foreignAttachments(to: name)
        if !foreign.isEmpty {
            throw RuntimeError.failed(
                "network \(name) is in use by attachments this pier does not own (another --root or runtime): "
                    + foreign.joined(separator: ", "))
        }
        var warnings: [String] = []
        for record in attached {
            do { try disconnectLocked(network: name, container: record.id, force: true) } catch {
                warnings.append("\(record.name): \(error)")
            }
        }
        do { try FileSystem.remove(entry.path) } catch { throw RuntimeError.failed("removing \(entry.path): \(error)") }
        return warnings
    }

    /// `network prune`: every network pier created that no container uses. Returns their names.
    public func pruneNetworks() throws(RuntimeError) -> [String] {
        let lock = try store.lock()
        defer { lock.release() }
        var removed: [String] = []
        for entry in ConfigDirectory(path: configs.directory).networks() {
            guard let list = entry.list, NetworkTemplates.metadata(of: list) != nil,
                containers(on: list.name).isEmpty, foreignAttachments(to: list.name).isEmpty
            else { continue }
            _ = try removeNetworkLocked(list.name, force: false)
            removed.append(list.name)
        }
        return removed
    }

    /// The capability arguments an attachment's aliases travel in, Podman's way
    /// (`{"aliases": {"<network>": ["a", "b"]}}`), for a name service that declares `aliases`.
    /// The container's own name leads, so it resolves without a name-specific capability.
    static func aliasCapability(
        _ capabilities: inout JSONObject, list: NetworkConfigList, container: String, aliases: [String]
    ) {
        guard list.plugins.contains(where: { $0.capabilities.contains("aliases") }) else { return }
        var names = [container]
        for alias in aliases where !names.contains(alias) { names.append(alias) }
        capabilities["aliases"] = .object([list.name: .array(names.map { .string($0) })])
    }

    /// The container's `--dns`, `--dns-search`, `--dns-option` as the CNI `dns` capability, for a
    /// network whose plugins declare it (the name service takes the servers as the container's upstreams).
    static func dnsCapability(_ capabilities: inout JSONObject, list: NetworkConfigList, process: ProcessOptions) {
        guard let dns = CapabilityArgs.dns(process), list.plugins.contains(where: { $0.capabilities.contains("dns") })
        else { return }
        capabilities["dns"] = dns
    }

    /// `network connect`: ADD the container's next interface (`eth1`, …) on `network`; its record and
    /// the result cache say so afterwards. The container must own its network namespace.
    public func connect(
        network: String, container reference: String, aliases: [String] = [], ips: [String] = [],
        service: ServiceOptions? = nil
    ) throws(RuntimeError) -> NetworkAttachmentRecord {
        try requireRoot()
        try service?.validate()
        var list = try configs.load(network: network)
        for plugin in list.plugins { _ = try executor.find(plugin.type) }
        var options = CreateOptions(command: ["connect"])
        options.ips = ips
        try ContainerManager.requireCapabilities(options, of: list)
        let lock = try store.lock()
        defer { lock.release() }
        var record = try store.find(reference)
        guard record.ownsNetns, record.netnsPath != nil else {
            throw RuntimeError.invalidArgument(
                "container \(record.name) has no network namespace of its own (--net host or container:): nothing to connect"
            )
        }
        guard record.status == .created || record.status == .started else {
            throw RuntimeError.failed("container \(record.name) is \(record.displayStatus): it cannot be connected")
        }
        guard !record.attachments.contains(where: { $0.network == network }) else {
            throw RuntimeError.failed("container \(record.name) is already attached to network \(network)")
        }
        // A network wanting the default route gets it only when no attachment has it yet.
        var previous: [NetworkConfigList] = []
        for attachment in record.attachments {
            if let cached = configForDelete(network: attachment.network, request: record.request(for: attachment)) {
                previous.append(cached)
            }
        }
        list = ContainerManager.oneDefaultGateway(previous + [list]).last ?? list
        let used = Set(record.attachments.map(\.ifName))
        let ifName = (0...).lazy.map { "eth\($0)" }.first { !used.contains($0) } ?? "eth0"
        var capabilities = try CapabilityArgs.build(ports: [], ips: ips, mac: nil)
        ContainerManager.aliasCapability(&capabilities, list: list, container: record.name, aliases: aliases)
        ContainerManager.dnsCapability(&capabilities, list: list, process: store.loadProcess(of: record.id))
        var attachment = NetworkAttachmentRecord(
            network: network, ifName: ifName, capabilityArgs: JSONValue.object(capabilities).encodedString)
        // Recorded before the ADD: a `pier` killed during it leaves what `rm -f` and `gc` need.
        record.attachments.append(attachment)
        record.networkMode = .networks(record.attachments.map(\.network))
        try store.save(record)
        do {
            let result = try executor.add(list, record.request(for: attachment))
            attachment.addresses = result.ips.map { $0.address.description }
        } catch {
            try? executor.delete(list, record.request(for: attachment))
            record.attachments.removeLast()
            record.networkMode = record.attachments.isEmpty ? .none : .networks(record.attachments.map(\.network))
            try? store.save(record)
            throw error
        }
        record.attachments[record.attachments.count - 1] = attachment
        try store.save(record)
        if let service {
            do {
                try joinService(service, record: record, attachment: attachment, list: list, active: record.isRunning)
                if record.isRunning && record.detached {
                    _ = try ProcessSpawner.spawn(
                        [environment.executable] + globalArguments + ["__service-watch", record.id], output: .discard,
                        newSession: true, reportFailure: false)
                }
            } catch {
                try? disconnectLocked(network: network, container: record.id, force: true)
                throw error
            }
        }
        return attachment
    }

    /// `network disconnect`: DEL the container's interface on `network` (with the list and result ADD
    /// cached), then drop it from the record. A failed DEL keeps it unless `force`.
    public func disconnect(network: String, container reference: String, force: Bool) throws(RuntimeError) {
        try requireRoot()
        let lock = try store.lock()
        defer { lock.release() }
        try disconnectLocked(network: network, container: reference, force: force)
    }

    private func disconnectLocked(network: String, container reference: String, force: Bool) throws(RuntimeError) {
        var record = try store.find(reference)
        guard let index = record.attachments.firstIndex(where: { $0.network == network }) else {
            throw RuntimeError.failed("container \(record.name) is not connected to network \(network)")
        }
        let attachment = record.attachments[index]
        let request = record.request(for: attachment)
        let left = leaveServices(record.id, network: network)
        if !left.isEmpty && !force { throw RuntimeError.failed(left.joined(separator: "; ")) }
        if let list = configForDelete(network: network, request: request) {
            do { try executor.delete(list, request) } catch { if !force { throw error } }
        } else if !force {
            throw RuntimeError.failed("network \"\(network)\": no config (neither cached nor on disk) to DEL with")
        }
        record.attachments.remove(at: index)
        record.networkMode = record.attachments.isEmpty ? .none : .networks(record.attachments.map(\.network))
        try store.save(record)
    }
}
