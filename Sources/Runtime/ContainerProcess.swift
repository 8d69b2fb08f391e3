import CNI
import Glibc
import NetNS
import PierState

/// Starting, signalling and entering container processes.
enum ContainerProcess {
    /// Signals the container's process (its whole process group when it was detached into its own
    /// session); nothing happens when it is not running.
    static func kill(_ record: ContainerRecord, signal: Int32) {
        guard record.isRunning, let pid = record.pid else { return }
        if record.detached {
            _ = Glibc.kill(-pid, signal)
        }
        _ = Glibc.kill(pid, signal)
    }

    /// Kills whatever process the record or its pid file names, whatever the recorded status: a `pier`
    /// killed between spawning the process and recording its pid leaves only the pid file.
    static func killAny(_ record: ContainerRecord, pidFile: String) {
        var candidates: [(Int32, UInt64)] = []
        if let pid = record.pid, let start = record.pidStartTime { candidates.append((pid, start)) }
        if let bytes = try? Files.read(pidFile) {
            let fields = String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
            if fields.count == 2, let pid = Int32(fields[0]), let start = UInt64(fields[1]) {
                candidates.append((pid, start))
            }
        }
        for (pid, start) in candidates where ProcessState.isAlive(pid: pid, startTime: start) {
            // Detached containers lead their own process group: take their children too.
            if getpgid(pid) == pid { _ = Glibc.kill(-pid, SIGKILL) }
            _ = Glibc.kill(pid, SIGKILL)
            _ = ProcessState.waitForExit(pid: pid, startTime: start, seconds: 5)
        }
    }

    /// Waits up to `seconds` for the process to go; true when it did.
    static func waitForExit(_ record: ContainerRecord, seconds: Double) -> Bool {
        guard record.status == .started, let pid = record.pid, let start = record.pidStartTime else { return true }
        return ProcessState.waitForExit(pid: pid, startTime: start, seconds: seconds)
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

extension ContainerManager {
    /// Starts the container's command; detached output goes to `<root>/containers/<id>/log`. Returns the
    /// exit code for a foreground start, nil for a detached one.
    public func start(_ reference: String, detach: Bool) throws(RuntimeError) -> Int32? {
        try requireRoot()
        let lock = try store.lock()
        let record = try store.find(reference)
        guard record.status == .created || (record.status == .started && !record.isRunning) else {
            lock.release()
            if record.isRunning { throw RuntimeError.failed("container \(record.name) is already running") }
            throw RuntimeError.failed("container \(record.name) is \(record.displayStatus): remove it with rm -f")
        }
        return try launch(record, process: store.loadProcess(of: record.id), lock: lock, detach: detach)
    }

    /// Starts a created (or ended) container's command; `lock` is the store lock, released here once the
    /// record says started (or was put back after a failure).
    private func launch(
        _ record: ContainerRecord, process: ProcessOptions, lock: FileLock, detach: Bool
    ) throws(RuntimeError) -> Int32? {
        var record = record
        if !detach && process.tty && isatty(STDIN_FILENO) == 0 {
            lock.release()
            throw RuntimeError.invalidArgument("the input device is not a TTY")
        }
        var spec = InitSpec(command: record.command)
        spec.netns = record.netnsPath
        spec.hostname = record.name
        spec.environment = process.environment
        spec.workdir = process.workdir
        Files.remove(store.exitPath(of: record.id))
        if detach { spec.exitFile = store.exitPath(of: record.id) }
        spec.pidFile = store.pidPath(of: record.id)
        if let rootfs = record.rootfs {
            spec.rootfs = rootfs
            spec.binds = try writeContainerFiles(record, process: process).binds
        } else {
            // On the host's filesystem, a network's name server (or --dns) still gets the container a
            // resolv.conf of its own: bound over /etc's in a private mount namespace, as
            // `ip netns exec` does with /etc/netns/NAME.
            let files = try writeContainerFiles(record, process: process)
            if files.differsFromHost {
                spec.binds = files.binds.filter { $0.target == "etc/resolv.conf" || $0.target == "etc/hosts" }
            }
        }
        let logPath = store.logPath(of: record.id)
        let pending: ProcessSpawner.PendingStart
        do {
            pending = try ProcessSpawner.startInit(
                spec, executable: environment.executable,
                output: detach ? .log(logPath) : process.interactive || process.tty ? .inherit : .inheritOutput,
                newSession: detach)
        } catch {
            lock.release()
            throw error
        }
        let pid = pending.pid
        let before = record
        record.status = .started
        record.pid = pid
        record.pidStartTime = ProcessState.stat(pid)?.startTime
        // Detached, the forked child stays as the command's monitor (`ContainerInit.monitor`).
        record.monitorRobustList = detach ? pending.robustList : nil
        record.detached = detach
        record.exitCode = nil
        // Recorded while the child enters the container; undone when it fails before its exec.
        var saveError: RuntimeError?
        do { try store.save(record) } catch { saveError = error }
        do { try pending.confirm() } catch {
            try? store.save(before)
            lock.release()
            throw error
        }
        if let saveError {
            lock.release()
            throw saveError
        }
        if detach && record.autoRemove { try startReaper(record) }
        lock.release()
        try activateServiceMemberships(record, detached: detach)
        guard !detach else { return nil }

        // Terminal signals reach the container's process group; pier stays to record the exit and, with
        // --rm, to clean up.
        signal(SIGINT, SIG_IGN)
        signal(SIGQUIT, SIG_IGN)
        let code = ProcessSpawner.wait(pid)
        try? setServiceMembersActive(record.id, false)
        let finalLock = try store.lock()
        defer { finalLock.release() }
        if var current = store.load(id: record.id), current.pid == pid {
            current.exitCode = code
            try store.save(current)
            if current.autoRemove { try tearDown(current, force: true) }
        }
        return code
    }

    /// `run`: create, then start; a failed start removes what create made.
    public func run(_ options: CreateOptions, detach: Bool) throws(RuntimeError) -> (ContainerRecord, Int32?) {
        // Started under the lock create took: its `created` state is never saved (nothing reads it).
        let (record, lock) = try createHoldingLock(options)
        do {
            return (record, try launch(record, process: options.process, lock: lock, detach: detach))
        } catch {
            lock.release()
            _ = try? remove(record.id, force: true)
            throw error
        }
    }

    /// SIGTERM, then SIGKILL when the process has not gone after `grace` seconds.
    public func stop(_ reference: String, grace: Double) throws(RuntimeError) {
        try requireRoot()
        let record = try store.find(reference)
        guard record.isRunning else { return }
        ContainerProcess.kill(record, signal: SIGTERM)
        if ContainerProcess.waitForExit(record, seconds: grace) {
            try setServiceMembersActive(record.id, false)
            return
        }
        ContainerProcess.kill(record, signal: SIGKILL)
        _ = ContainerProcess.waitForExit(record, seconds: 5)
        try setServiceMembersActive(record.id, false)
    }

    /// The exit code of a container whose process has ended: recorded by a foreground `pier`, or by the
    /// detached container's monitor (gone without a word only when SIGKILLed: 137, as Docker reports).
    public func exitCode(of record: ContainerRecord) -> Int32? {
        guard record.status == .started, !record.isRunning else { return nil }
        return endedCode(id: record.id, recorded: record.exitCode, detached: record.detached)
    }

    /// The exit code of an ended process: the recorded one, else the detached monitor's exit file.
    private func endedCode(id: String, recorded: Int32?, detached: Bool) -> Int32? {
        if let recorded { return recorded }
        guard detached else { return nil }
        guard let bytes = try? Files.read(store.exitPath(of: id)) else { return 128 + SIGKILL }
        return Int32(String(decoding: bytes, as: UTF8.self).trimmingSuffixNewlines()) ?? 128 + SIGKILL
    }

    /// What `ps` and `inspect` show: `exited (3)` where the code is known.
    public func statusText(of record: ContainerRecord) -> String {
        guard let code = exitCode(of: record) else { return record.displayStatus }
        return "exited (\(code))"
    }

    /// `statusText(of:)` for a listing line whose liveness `ps` checked once (`ListedContainer.isRunning`).
    public func statusText(of listed: ListedContainer, running: Bool) -> String {
        guard listed.status == .started else { return listed.status.rawValue }
        if running { return "running" }
        guard let code = endedCode(id: listed.id.string, recorded: listed.exitCode, detached: listed.detached) else {
            return "exited"
        }
        return "exited (\(code))"
    }

    /// `kill`: one signal to a running container's process (group).
    public func sendSignal(_ reference: String, signal: Int32) throws(RuntimeError) {
        try requireRoot()
        let record = try store.find(reference)
        guard record.isRunning else { throw RuntimeError.notRunning(record.name) }
        ContainerProcess.kill(record, signal: signal)
    }

    /// Runs a command inside a running container's namespaces, in the foreground; returns its exit code.
    public func exec(
        _ reference: String, command: [String], process: ProcessOptions = ProcessOptions(interactive: true)
    ) throws(RuntimeError) -> Int32 {
        try requireRoot()
        guard !command.isEmpty else { throw RuntimeError.invalidArgument("no command given") }
        let record = try store.find(reference)
        guard record.isRunning, let pid = record.pid else { throw RuntimeError.notRunning(record.name) }
        if let path = record.netnsPath, (try? NetworkNamespace.open(path: path)) == nil {
            throw RuntimeError.failed(
                "container \(record.name) lost its network namespace \(path) (the container it joined was removed): "
                    + "remove it with rm -f \(record.name)")
        }
        if process.tty && isatty(STDIN_FILENO) == 0 {
            throw RuntimeError.invalidArgument("the input device is not a TTY")
        }
        var spec = InitSpec(command: command)
        spec.environment = store.loadProcess(of: record.id).environment + process.environment
        spec.workdir = process.workdir
        spec.netns = record.netnsPath
        spec.joinUTS = "/proc/\(pid)/ns/uts"
        if record.rootfs != nil {
            spec.joinMount = "/proc/\(pid)/ns/mnt"
            spec.joinRoot = "/proc/\(pid)/root"
        } else if Self.mountNamespace("/proc/\(pid)/ns/mnt") != Self.mountNamespace("/proc/self/ns/mnt") {
            // Its own resolv.conf and hosts: a mount namespace, but the host's root.
            spec.joinMount = "/proc/\(pid)/ns/mnt"
        }
        let pending = try ProcessSpawner.startInit(
            spec, executable: environment.executable,
            output: process.interactive || process.tty ? .inherit : .inheritOutput, newSession: false)
        try pending.confirm()
        let child = pending.pid
        signal(SIGINT, SIG_IGN)
        return ProcessSpawner.wait(child)
    }

    /// What a detached container wrote to stdout and stderr (empty for foreground ones).
    /// A detached container's output as it wrote it (not necessarily UTF-8).
    public func logs(_ reference: String) throws(RuntimeError) -> [UInt8] {
        let record = try store.find(reference)
        return (try? Files.read(store.logPath(of: record.id))) ?? []
    }

    /// A detached `pier __reap` that removes a `--rm` container once its process has gone; there is no
    /// daemon to do it.
    private func startReaper(_ record: ContainerRecord) throws(RuntimeError) {
        _ = try ProcessSpawner.spawn(
            [environment.executable] + globalArguments + ["__reap", record.id], output: .discard, newSession: true,
            reportFailure: false)
    }

    /// The options that make another `pier` see the same state, configs, cache and plugins.
    public var globalArguments: [String] {
        [
            "--root", environment.root, "--cache-dir", environment.cacheDirectory, "--config-dir",
            environment.configDirectory, "--netns-dir", environment.netnsDirectory, "--cni-path",
            environment.pluginPath.joined(separator: ":"),
        ]
    }

    /// The body of `pier __reap ID`: poll until the process is gone, then remove the container.
    public func reap(_ id: String) {
        while let record = store.load(id: id), record.status == .started, record.isRunning {
            usleep(200_000)
        }
        guard let record = store.load(id: id), record.status == .started, record.autoRemove else { return }
        _ = try? remove(record.id, force: true)
    }

    /// The inode of a mount namespace link, nil when it cannot be read.
    static func mountNamespace(_ path: String) -> UInt? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt(info.st_ino)
    }

    /// resolv.conf, hosts and hostname for the container, to bind over its root's; `differsFromHost`
    /// when resolv.conf names servers of the container's networks or of `--dns`, or adds search
    /// domains or options (else it is the host's as it is).
    private func writeContainerFiles(_ record: ContainerRecord, process: ProcessOptions) throws(RuntimeError)
        -> (binds: [(source: String, target: String)], differsFromHost: Bool)
    {
        let directory = store.directory(of: record.id)
        var nameservers: [String] = []
        var search: [String] = []
        var options: [String] = []
        var addresses: [String] = []
        for attachment in record.attachments {
            let request = record.request(for: attachment)
            if let list = try? configs.load(network: attachment.network),
                let result = executor.cachedResult(list, request)
            {
                nameservers += result.dns.nameservers
                search += result.dns.search
                options += result.dns.options
                addresses += result.ips.map { $0.address.address.description }
            }
        }
        // --dns goes to the network's name server as the container's upstreams when a network takes
        // the `dns` capability (then its answers already carry them); otherwise straight into resolv.conf.
        if nameservers.isEmpty { nameservers = process.dnsServers ?? [] }
        search += process.dnsSearch ?? []
        options += process.dnsOptions ?? []
        var resolv = ""
        if nameservers.isEmpty, let host = try? Files.read("/etc/resolv.conf") {
            resolv = String(decoding: host, as: UTF8.self)
            if !resolv.isEmpty && !resolv.hasSuffix("\n") { resolv += "\n" }
            if !search.isEmpty { resolv += "search \(unique(search).joined(separator: " "))\n" }
            if !options.isEmpty { resolv += "options \(unique(options).joined(separator: " "))\n" }
        } else {
            if !search.isEmpty { resolv += "search \(unique(search).joined(separator: " "))\n" }
            for server in unique(nameservers) { resolv += "nameserver \(server)\n" }
            if !options.isEmpty { resolv += "options \(unique(options).joined(separator: " "))\n" }
        }
        var hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        for address in addresses { hosts += "\(address)\t\(record.name)\n" }
        if addresses.isEmpty { hosts += "127.0.1.1\t\(record.name)\n" }
        let files = [("resolv.conf", resolv), ("hosts", hosts), ("hostname", record.name + "\n")]
        var binds: [(source: String, target: String)] = []
        for (name, text) in files {
            let path = directory + "/" + name
            // Not synced: every start writes them afresh.
            try Files.writeAtomically(Array(text.utf8), to: path, mode: 0o644, durable: false)
            binds.append((path, "etc/" + name))
        }
        return (binds, !nameservers.isEmpty || !search.isEmpty || !options.isEmpty)
    }

    private func unique(_ items: [String]) -> [String] {
        var seen: Set<String> = []
        return items.filter { seen.insert($0).inserted }
    }
}
