import CNI
import Glibc
import NetNS
import Netlink
import PierState

/// What `pier create` / `pier run` were asked for.
public struct CreateOptions: Sendable {
    public var name: String?
    public var command: [String]
    /// Raw `--net` values: network names, `host`, `none` or `container:NAME`. Empty means the default.
    public var networks: [String]
    public var ports: [String]
    public var ips: [String]
    public var mac: String?
    /// `--alias`: more names of the container on its first network, for the name service.
    public var aliases: [String]
    public var cniArgs: [(String, String)]
    public var rootfs: String?
    public var autoRemove: Bool
    /// Environment, working directory and terminal handling of the command.
    public var process: ProcessOptions
    /// `--service`: the container joins this service on its first network.
    public var service: ServiceOptions?

    public init(command: [String]) {
        self.command = command
        self.networks = []
        self.ports = []
        self.ips = []
        self.aliases = []
        self.cniArgs = []
        self.autoRemove = false
        self.process = ProcessOptions()
    }
}

/// The container lifecycle over namespaces: create (netns + ADDs), start, stop, remove, list. Every
/// state change holds the store lock and is recorded before it is acted on.
public final class ContainerManager {
    public static let defaultNetwork = "pier"

    public let environment: RuntimeEnvironment
    public let store: StateStore
    public let configs: NetworkConfigStore
    public let executor: NetworkExecutor

    public init(environment: RuntimeEnvironment) {
        self.environment = environment
        self.store = StateStore(root: environment.root)
        self.configs = NetworkConfigStore(directory: environment.configDirectory)
        self.executor = NetworkExecutor(
            pluginPath: environment.pluginPath, cache: ResultCache(cacheDirectory: environment.cacheDirectory))
    }

    static func parseNetworkMode(_ values: [String]) throws(RuntimeError) -> ContainerRecord.NetworkMode {
        let values = values.isEmpty ? [defaultNetwork] : values
        let special = values.filter { $0 == "host" || $0 == "none" || $0.hasPrefix("container:") }
        if let mode = special.first {
            guard values.count == 1 else {
                throw RuntimeError.invalidArgument("--net \(mode) cannot be combined with other --net options")
            }
            if mode == "host" { return .host }
            if mode == "none" { return .none }
            let other = String(mode.dropFirst("container:".count))
            guard !other.isEmpty else { throw RuntimeError.invalidArgument("--net container: needs a container name") }
            return .container(other)
        }
        guard Set(values).count == values.count else {
            throw RuntimeError.invalidArgument("a network may be given only once")
        }
        return .networks(values)
    }

    /// Creates the container: its record first (status `creating`), then the network namespace and one
    /// attachment per network. Any failure undoes everything done so far.
    public func create(_ options: CreateOptions) throws(RuntimeError) -> ContainerRecord {
        let (record, lock) = try createHoldingLock(options)
        defer { lock.release() }
        try store.save(record)
        return record
    }

    /// Everything `create` does but the final save, under the store lock, which the caller gets to
    /// release; the record returned is `created`, saved as `creating`. `run` starts the container under
    /// the same lock, and its save of the started record is the one a power cut must keep (a `pier`
    /// killed before it leaves the `creating` record for `gc`).
    func createHoldingLock(_ options: CreateOptions) throws(RuntimeError) -> (ContainerRecord, FileLock) {
        try requireRoot()
        guard !options.command.isEmpty else { throw RuntimeError.invalidArgument("no command given") }
        let mode = try ContainerManager.parseNetworkMode(options.networks)
        // Everything that can be checked without touching the system is checked first.
        var lists: [NetworkConfigList] = []
        if case .networks(let names) = mode {
            for name in names {
                let list = try configs.load(network: name)
                for plugin in list.plugins {
                    _ = try executor.find(plugin.type)
                    // The IPAM delegate is looked up by the plugin, on the same path: check it up front too.
                    if let ipam = plugin.raw["ipam"]?["type"]?.stringValue, !ipam.isEmpty {
                        _ = try executor.find(ipam)
                    }
                }
                lists.append(list)
            }
            if let first = lists.first { try ContainerManager.requireCapabilities(options, of: first) }
            lists = ContainerManager.oneDefaultGateway(lists)
        } else if !options.ports.isEmpty || !options.ips.isEmpty || options.mac != nil {
            throw RuntimeError.invalidArgument("-p, --ip and --mac need a CNI network (not host, none or container:)")
        }
        if let service = options.service {
            guard case .networks = mode else {
                throw RuntimeError.invalidArgument("--service needs a CNI network (not host, none or container:)")
            }
            try service.validate()
        }
        let capabilities = try CapabilityArgs.build(ports: options.ports, ips: options.ips, mac: options.mac)
        if let rootfs = options.rootfs, !isDirectory(rootfs) {
            throw RuntimeError.invalidArgument("--rootfs \(rootfs) is not a directory")
        }

        let lock = try store.lock()
        let id = ContainerID.generate()
        let name = options.name ?? ContainerID.defaultName(for: id)
        try ContainerID.validateName(name)
        guard store.record(named: name) == nil else { throw RuntimeError.nameInUse(name) }

        var record = ContainerRecord(id: id, name: name, command: options.command, networkMode: mode)
        record.rootfs = options.rootfs
        record.autoRemove = options.autoRemove
        record.ownerPID = getpid()
        switch mode {
        case .host:
            break
        case .container(let other):
            guard let target = store.record(named: other) ?? store.load(id: other) else {
                throw RuntimeError.unknownContainer(other)
            }
            record.netnsPath = target.netnsPath
        case .none, .networks:
            record.netnsPath = environment.netnsDirectory + "/" + netnsName(name)
            record.ownsNetns = true
        }
        for (index, list) in lists.enumerated() {
            // Published ports, fixed addresses and aliases belong to the first network, the primary interface.
            var attachmentCapabilities = index == 0 ? capabilities : JSONObject()
            ContainerManager.aliasCapability(
                &attachmentCapabilities, list: list, container: name, aliases: index == 0 ? options.aliases : [])
            ContainerManager.dnsCapability(&attachmentCapabilities, list: list, process: options.process)
            record.attachments.append(
                NetworkAttachmentRecord(
                    network: list.name, ifName: "eth\(index)",
                    capabilityArgs: JSONValue.object(attachmentCapabilities).encodedString,
                    cniArgs: options.cniArgs.map { [$0.0, $0.1] }))
        }
        // Not synced: until the plugins ran nothing outlives a power cut but their leases and cache
        // entries, which `gc` finds without this record (libcni's GC with the records that remain).
        try store.save(record, durable: false)

        do {
            try store.saveProcess(options.process, of: record.id)
            try setUpNetworking(&record, lists: lists)
            if let service = options.service, let attachment = record.attachments.first, let list = lists.first {
                try joinService(service, record: record, attachment: attachment, list: list, active: false)
            }
        } catch {
            _ = try? tearDown(record, force: true)
            throw naming(in: error)
        }
        record.status = .created
        record.ownerPID = nil
        return (record, lock)
    }

    /// Plugins name attachments by container ID (portmap: "port is already allocated (held by … <id>/eth0)");
    /// users know containers by name.
    private func naming(in error: RuntimeError) -> RuntimeError {
        guard case .plugin(let network, let plugin, let command, var cniError) = error else { return error }
        for record in store.all() where cniError.msg.contains(record.id) || cniError.details.contains(record.id) {
            cniError.msg += " [\(record.id.prefix(12)) is container \(record.name)]"
        }
        return .plugin(network: network, plugin: plugin, command: command, error: cniError)
    }

    /// `pier-<name>` in the netns directory, so `ip netns` shows whose it is.
    func netnsName(_ name: String) -> String { "pier-" + name }

    private func setUpNetworking(_ record: inout ContainerRecord, lists: [NetworkConfigList]) throws(RuntimeError) {
        guard record.ownsNetns, let path = record.netnsPath else { return }
        let namespace: NetworkNamespace
        do {
            namespace = try NetworkNamespace.create(
                named: netnsName(record.name), runDirectory: environment.netnsDirectory)
        } catch {
            throw RuntimeError.failed("creating the network namespace \(path): \(error)")
        }
        try bringLoopbackUp(namespace)
        for (index, list) in lists.enumerated() {
            let attachment = record.attachments[index]
            let result = try executor.add(list, record.request(for: attachment))
            // Saved with the record's next state: teardown needs the attachments (saved before), not these.
            record.attachments[index].addresses = result.ips.map { $0.address.description }
        }
    }

    /// Plugins configure their own interface only; loopback is the runtime's job (as in Docker and CRI).
    private func bringLoopbackUp(_ namespace: NetworkNamespace) throws(RuntimeError) {
        do {
            let netlink = try RouteNetlink(namespace: namespace)
            let loopback = try netlink.link(named: "lo")
            try netlink.setLinkUp(index: loopback.index)
        } catch {
            throw RuntimeError.failed("bringing loopback up in \(namespace.path): \(error)")
        }
    }

    /// Undoes whatever a record says may exist: the process, every attachment (DEL in reverse, with
    /// the cached result when there is one), the namespace, then the record. Returns what failed. A failed
    /// DEL keeps the record (status `removing`) for another try, unless `force`: then the record goes
    /// anyway and the cache entry that DEL left behind lets `gc` retry it.
    @discardableResult
    func tearDown(_ record: ContainerRecord, force: Bool) throws(RuntimeError) -> [String] {
        var record = record
        record.status = .removing
        record.ownerPID = getpid()
        try store.save(record)
        ContainerProcess.killAny(record, pidFile: store.pidPath(of: record.id))
        // Out of its services before its addresses go, so no connection is DNATed to them.
        var failures = leaveServices(record.id)
        // A `pier` killed between creating the mount point and bind-mounting the namespace leaves a plain
        // file there; plugins would refuse it, and DEL without a namespace is what the spec allows.
        let namespaceUsable = record.netnsPath.map { (try? NetworkNamespace.open(path: $0)) != nil } ?? true
        for attachment in record.attachments.reversed() {
            var request = record.request(for: attachment)
            if !namespaceUsable { request.netns = "" }
            guard let list = configForDelete(network: attachment.network, request: request) else {
                failures.append("network \"\(attachment.network)\": no config (neither cached nor on disk) to DEL with")
                continue
            }
            do {
                try executor.delete(list, request)
            } catch {
                failures.append("\(error)")
            }
        }
        // DEL works without the namespace, so it can go whatever happened above.
        if record.ownsNetns, let path = record.netnsPath {
            do {
                try NetworkNamespace.delete(path: path)
                releaseNetnsDirectory()
            } catch {
                failures.append("removing the network namespace: \(error)")
            }
        }
        if failures.isEmpty || force {
            store.remove(id: record.id)
            return failures
        }
        throw RuntimeError.failed(
            "removing \(record.name) left work undone (fix the cause, then `pier rm -f \(record.name)`):\n  "
                + failures.joined(separator: "\n  "))
    }

    /// Creating a namespace bind-mounts the netns directory on itself (as `ip netns` does), which keeps a
    /// directory of the user's choosing from being deleted (`rm -rf` fails on the mount point). Once the
    /// last namespace in it is gone, that self bind mount is undone; `/run/netns` is left as `ip` leaves it.
    func releaseNetnsDirectory() {
        let directory = environment.netnsDirectory
        guard directory != DefaultPaths.netnsDirectory, Files.list(directory).isEmpty,
            Self.isSelfBindMount(directory)
        else { return }
        _ = umount2(directory, Int32(MNT_DETACH))
    }

    /// True when `/proc/self/mountinfo` shows `directory` mounted from a directory of the same path (a bind
    /// of itself), not a file system of its own mounted there.
    static func isSelfBindMount(_ directory: String) -> Bool {
        guard let bytes = try? Files.read("/proc/self/mountinfo") else { return false }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            // Fields: id parent major:minor root mount-point …
            let fields = line.split(separator: " ")
            guard fields.count > 4, fields[4] == directory else { continue }
            let root = String(fields[3])
            if root != "/" && directory.hasSuffix(root) { return true }
        }
        return false
    }

    /// DEL uses the exact list that ADD used (cached), or the one on disk when nothing was cached.
    func configForDelete(network: String, request: AttachmentRequest) -> NetworkConfigList? {
        if let entry = executor.cache.read(network: network, containerID: request.containerID, ifName: request.ifName),
            let list = try? NetworkConfigList(bytes: entry.config)
        {
            return list
        }
        return try? configs.load(network: network)
    }

    public func list() -> [ContainerRecord] { store.all() }

    /// Every container's listing line, read in place for `body` (`StateStore.withListedContainers`).
    public func withListedContainers<Result>(_ body: ([ListedContainer]) -> Result) -> Result {
        store.withListedContainers(body)
    }

    public func find(_ reference: String) throws(RuntimeError) -> ContainerRecord {
        try store.find(reference)
    }

    /// `rm`: refuses a running container unless forced (then it is killed first), and one whose network
    /// namespace other containers joined (`--net container:NAME`, unless they are removed in the same
    /// command): forced, it warns about them. Returns warnings: what a forced removal could not undo, and
    /// who lost their network.
    @discardableResult
    public func remove(_ reference: String, force: Bool, alsoRemoving: [String] = []) throws(RuntimeError)
        -> [String]
    {
        try requireRoot()
        let lock = try store.lock()
        defer { lock.release() }
        let record = try store.find(reference)
        // Holding the lock means no other pier is half-way through this record: a `creating` or
        // `removing` status here was left by a pier that died, and is safe to finish.
        if record.isRunning && !force { throw RuntimeError.stillRunning(record.name) }
        let dependents = namespaceSharers(of: record).filter { other in
            !alsoRemoving.contains { $0 == other.name || $0 == other.id || ($0.count >= 3 && other.id.hasPrefix($0)) }
        }
        let names = dependents.map(\.name).joined(separator: ", ")
        if !dependents.isEmpty && !force {
            throw RuntimeError.failed(
                "container \(record.name) is in use: \(names) joined its network namespace (--net container:\(record.name)); "
                    + "remove \(dependents.count == 1 ? "it" : "them") first, or use rm -f (\(names) then loses its network)"
            )
        }
        var warnings = try tearDown(record, force: force)
        if !dependents.isEmpty {
            warnings.append(
                "\(names) joined the network namespace of \(record.name) and lost \(dependents.count == 1 ? "its" : "their") "
                    + "network: exec into \(dependents.count == 1 ? "it" : "them") fails; remove with rm -f \(names)")
        }
        return warnings
    }

    /// Whether a cached attachment may belong to a live container, whoever made it: its network namespace
    /// still exists, or the entry does not say which it was (libcni before 1.1 records no netns), so
    /// nothing proves it dead. Only attachments that fail this are garbage.
    func isLive(_ entry: CachedAttachment) -> Bool {
        entry.request.netns.isEmpty || (try? NetworkNamespace.open(path: entry.request.netns)) != nil
    }

    /// Containers living in `record`'s network namespace without owning it.
    func namespaceSharers(of record: ContainerRecord) -> [ContainerRecord] {
        guard record.ownsNetns, let path = record.netnsPath else { return [] }
        return store.joiners(of: path).filter { $0.id != record.id }
    }

    /// `--ip`, `--mac` and `-p` travel as capability arguments, which a plugin only gets when its config
    /// declares the capability: refuse rather than start the container without what was asked for.
    static func requireCapabilities(_ options: CreateOptions, of list: NetworkConfigList) throws(RuntimeError) {
        if !options.ports.isEmpty && NetworkTemplates.isInternal(list) {
            throw RuntimeError.invalidArgument(
                "network \"\(list.name)\" is internal: nothing leaves it, so no port can be published on it (-p)")
        }
        let declared = list.plugins.reduce(into: Set<String>()) { $0.formUnion($1.capabilities) }
        let wanted: [(option: String, capability: String, given: Bool)] = [
            ("--ip", "ips", !options.ips.isEmpty), ("--mac", "mac", options.mac != nil),
            ("-p", "portMappings", !options.ports.isEmpty),
        ]
        for (option, capability, given) in wanted where given && !declared.contains(capability) {
            throw RuntimeError.invalidArgument(
                "\(option) needs the \"\(capability)\" capability, which no plugin of network \"\(list.name)\" declares "
                    + "(add \"capabilities\": {\"\(capability)\": true} to the plugin that should honour it)")
        }
    }

    /// Several networks that each want the default route (`isDefaultGateway`) would install it twice; the
    /// second fails with EEXIST. As in Docker, the first network that offers a default gateway gets it: the
    /// later lists are run with `isDefaultGateway` off (and cached that way, so CHECK and DEL agree).
    static func oneDefaultGateway(_ lists: [NetworkConfigList]) -> [NetworkConfigList] {
        var taken = false
        return lists.map { list in
            let wants = list.plugins.contains { $0.raw["isDefaultGateway"]?.boolValue == true }
            guard wants else { return list }
            guard taken else {
                taken = true
                return list
            }
            guard case .object(var object)? = try? JSONValue(parsing: list.bytes),
                case .array(let plugins)? = object["plugins"]
            else { return list }
            object["plugins"] = .array(
                plugins.map { plugin in
                    guard case .object(var fields) = plugin, fields["isDefaultGateway"] != nil else { return plugin }
                    fields["isDefaultGateway"] = .bool(false)
                    return .object(fields)
                })
            return (try? NetworkConfigList(bytes: JSONValue.object(object).encodedBytes)) ?? list
        }
    }

    /// The first attachment's published ports, as `pier port` lists them.
    public func publishedPorts(_ reference: String) throws(RuntimeError) -> [PublishedPortMapping] {
        let record = try store.find(reference)
        guard let attachment = record.attachments.first,
            let value = try? JSONValue(parsing: attachment.capabilityArgs),
            case .array(let mappings)? = value["portMappings"]
        else { return [] }
        return mappings.compactMap { mapping in
            guard let host = mapping["hostPort"]?.intValue, let container = mapping["containerPort"]?.intValue else {
                return nil
            }
            return PublishedPortMapping(
                hostIP: mapping["hostIP"]?.stringValue, hostPort: host, containerPort: container,
                protocol: mapping["protocol"]?.stringValue ?? "tcp")
        }
    }

    /// CHECK every attachment of a container against its cached result.
    public func check(_ reference: String) throws(RuntimeError) {
        try requireRoot()
        let record = try store.find(reference)
        for attachment in record.attachments {
            let request = record.request(for: attachment)
            // The list ADD used (cached), which may differ from the file: see `oneDefaultGateway`.
            guard let list = configForDelete(network: attachment.network, request: request) else {
                _ = try configs.load(network: attachment.network)
                continue
            }
            try executor.check(list, request)
        }
    }
}

/// One `-p` mapping of a container.
public struct PublishedPortMapping: Sendable, Equatable {
    public var hostIP: String?
    public var hostPort: Int
    public var containerPort: Int
    public var `protocol`: String
}
