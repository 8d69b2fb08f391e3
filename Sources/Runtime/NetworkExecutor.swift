import CNI

/// Runs a network config list the way libcni does (`AddNetworkList`, `DelNetworkList`,
/// `CheckNetworkList`, `GCNetworkList`, `GetStatusNetworkList`), including its result cache, so a
/// host can switch between `pier` and libcni-based tools mid-life.
public struct NetworkExecutor: Sendable {
    public let pluginPath: [String]
    public let cache: ResultCache
    /// The runtime's own environment; plugins inherit it with the `CNI_*` variables on top.
    public let environment: [String: String]

    /// Pier's own plugins run in a forked child of this process instead of an exec'd one; nil execs
    /// every plugin.
    var inProcess: InProcessPlugins?

    /// `runsOwnPluginsInProcess`: a plugin on the path that is a `pier-cni` built from the same
    /// sources as this process runs in a forked child, without exec (`InProcessPlugins`).
    public init(
        pluginPath: [String], cache: ResultCache, environment: [String: String] = processEnvironment(),
        runsOwnPluginsInProcess: Bool = true
    ) {
        self.pluginPath = pluginPath
        self.cache = cache
        self.environment = environment
        let cacheDirectory = String(
            cache.directory[..<(cache.directory.lastIndex(of: "/") ?? cache.directory.endIndex)])
        inProcess = runsOwnPluginsInProcess ? InProcessPlugins(cacheDirectory: cacheDirectory) : nil
    }

    /// ADD in list order, each plugin getting the previous one's result; the final result is cached only
    /// when the whole chain succeeded.
    public func add(_ list: NetworkConfigList, _ request: AttachmentRequest) throws(RuntimeError) -> CNIResult {
        try validate(list, request)
        var result: CNIResult?
        for index in list.plugins.indices {
            let stdout = try invoke(list, index, .add, request, prevResult: result)
            do {
                result = try CNIResult(bytes: stdout, defaultVersion: list.cniVersion)
            } catch {
                throw pluginError(list, index, .add, error)
            }
        }
        let final = result ?? CNIResult(cniVersion: list.cniVersion)
        let json: JSONValue
        do { json = try final.json(version: list.cniVersion) } catch { throw pluginError(list, 0, .add, error) }
        try cache.write(network: list.name, config: list.bytes, request: request, result: json)
        return final
    }

    /// DEL in reverse order with the cached result (0.4.0+); an unreadable cache entry is dropped and
    /// DEL goes on without `prevResult`, as libcni does. The cache entry goes once every plugin succeeded.
    public func delete(_ list: NetworkConfigList, _ request: AttachmentRequest) throws(RuntimeError) {
        try validate(list, request)
        var cached: CNIResult?
        // Older configs never got a prevResult on DEL.
        if (try? CNIVersion.isAtLeast(list.cniVersion, "0.4.0")) == true {
            cached = cachedResult(list, request)
        }
        for index in list.plugins.indices.reversed() {
            _ = try invoke(list, index, .delete, request, prevResult: cached)
        }
        cache.remove(network: list.name, containerID: request.containerID, ifName: request.ifName)
    }

    /// CHECK in list order against the cached result; skipped when the list sets `disableCheck`.
    public func check(_ list: NetworkConfigList, _ request: AttachmentRequest) throws(RuntimeError) {
        try validate(list, request)
        guard (try? CNIVersion.isAtLeast(list.cniVersion, "0.4.0")) == true else {
            throw RuntimeError.failed(
                "network \"\(list.name)\": configuration version \(list.cniVersion) does not allow CHECK")
        }
        if list.disableCheck { return }
        guard let cached = cachedResult(list, request) else {
            throw RuntimeError.failed(
                "network \"\(list.name)\": no cached result for \(request.containerID)/\(request.ifName) to check")
        }
        for index in list.plugins.indices {
            _ = try invoke(list, index, .check, request, prevResult: cached)
        }
    }

    /// libcni's GC: DEL every cached attachment of this network that is not valid, then (1.1.0+) send
    /// GC with the valid attachments to every plugin. Errors are collected, not fatal.
    public func garbageCollect(_ list: NetworkConfigList, valid: [Attachment]) -> [RuntimeError] {
        if list.disableGC { return [] }
        var errors: [RuntimeError] = []
        let keep = Set(valid)
        for entry in cache.all() where entry.networkName == list.name {
            let identity = Attachment(
                network: list.name, containerID: entry.request.containerID, ifName: entry.request.ifName)
            if keep.contains(identity) { continue }
            do {
                try delete(list, entry.request)
            } catch {
                errors.append(
                    .failed(
                        "failed to delete stale attachment \(identity.containerID) \(identity.ifName): \(error)"))
            }
        }
        guard (try? CNIVersion.isAtLeast(list.cniVersion, "1.1.0")) == true else { return errors }
        let empty = AttachmentRequest(containerID: "", netns: "", ifName: "")
        for index in list.plugins.indices {
            do {
                _ = try invoke(list, index, .garbageCollect, empty, validAttachments: valid)
            } catch {
                errors.append(error)
            }
        }
        return errors
    }

    /// STATUS to every plugin (1.1.0+), stopping at the first that is not available.
    public func status(_ list: NetworkConfigList) throws(RuntimeError) {
        guard (try? CNIVersion.isAtLeast(list.cniVersion, "1.1.0")) == true else { return }
        let empty = AttachmentRequest(containerID: "", netns: "", ifName: "")
        for index in list.plugins.indices {
            _ = try invoke(list, index, .status, empty)
        }
    }

    /// VERSION of every plugin in the list, as `cnitool`-style tools report it.
    public func versions(_ list: NetworkConfigList) throws(RuntimeError) -> [(plugin: String, info: VersionInfo)] {
        var answers: [(plugin: String, info: VersionInfo)] = []
        for plugin in list.plugins {
            let path = try find(plugin.type)
            var variables = environment
            // libcni sends dummy values so that plugins which validate them do not fail VERSION.
            variables["CNI_CONTAINERID"] = "dummy"
            variables["CNI_NETNS"] = "dummy"
            variables["CNI_IFNAME"] = "dummy"
            variables["CNI_PATH"] = pluginPath.joined(separator: ":")
            do {
                answers.append((plugin.type, try PluginExec.versionInfo(path: path, environment: variables)))
            } catch {
                throw RuntimeError.plugin(network: list.name, plugin: plugin.type, command: "VERSION", error: error)
            }
        }
        return answers
    }

    /// The cached result converted to the list's version, or nil when there is none or it is unusable
    /// (an unusable entry is removed, as libcni does).
    public func cachedResult(_ list: NetworkConfigList, _ request: AttachmentRequest) -> CNIResult? {
        guard let entry = cache.read(network: list.name, containerID: request.containerID, ifName: request.ifName)
        else { return nil }
        guard let json = entry.result, let result = try? CNIResult(json: json, defaultVersion: list.cniVersion) else {
            cache.remove(network: list.name, containerID: request.containerID, ifName: request.ifName)
            return nil
        }
        return result
    }

    public func find(_ plugin: String) throws(RuntimeError) -> String {
        do {
            return try PluginExec.find(plugin, in: pluginPath)
        } catch {
            throw RuntimeError.fromFind(error, plugin: plugin, searched: pluginPath)
        }
    }

    private func validate(_ list: NetworkConfigList, _ request: AttachmentRequest) throws(RuntimeError) {
        do {
            try Attachment(network: list.name, containerID: request.containerID, ifName: request.ifName).validate()
        } catch {
            throw RuntimeError.invalidArgument("network \"\(list.name)\": \(error.msg)")
        }
    }

    private func invoke(
        _ list: NetworkConfigList, _ index: Int, _ command: CNICommand, _ request: AttachmentRequest,
        prevResult: CNIResult? = nil, validAttachments: [Attachment] = []
    ) throws(RuntimeError) -> [UInt8] {
        let plugin = list.plugins[index]
        let path = try find(plugin.type)
        let stdin: [UInt8]
        do {
            stdin = try list.request(
                forPluginAt: index, command: command, prevResult: prevResult, capabilityArgs: request.capabilityArgs,
                validAttachments: validAttachments)
        } catch {
            throw pluginError(list, index, command, error)
        }
        var variables = environment
        variables["CNI_COMMAND"] = command.rawValue
        variables["CNI_CONTAINERID"] = request.containerID
        variables["CNI_NETNS"] = request.netns
        variables["CNI_IFNAME"] = request.ifName
        variables["CNI_ARGS"] = request.cniArgsText
        variables["CNI_PATH"] = pluginPath.joined(separator: ":")
        do throws(CNIError) {
            let execution: PluginExecution
            if let forked = try inProcess?.execution(path: path, environment: variables, stdin: stdin) {
                execution = forked
            } else {
                execution = try PluginExec.spawn(path: path, environment: variables, stdin: stdin)
            }
            guard execution.succeeded else { throw PluginExec.failure(of: execution) }
            return execution.stdout
        } catch {
            throw pluginError(list, index, command, error)
        }
    }

    private func pluginError(
        _ list: NetworkConfigList, _ index: Int, _ command: CNICommand, _ error: CNIError
    ) -> RuntimeError {
        let type = list.plugins.indices.contains(index) ? list.plugins[index].type : "?"
        return .plugin(network: list.name, plugin: type, command: command.rawValue, error: error)
    }
}
