import CNI
import CPierShim
import Glibc

/// One container as it is kept on disk: `<root>/containers/<id>/state.json`. It is written before
/// anything is created (status `creating`), so a `pier` killed half-way leaves a record that says
/// exactly what may exist and `rm -f` / `gc` can undo it.
public struct ContainerRecord: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Namespaces and attachments are being set up (or a `pier` died while doing so).
        case creating
        /// Networking is ready; no process has been started yet.
        case created
        /// A process was started; whether it still runs is checked against `/proc`.
        case started
        /// Teardown began; `rm -f` or `gc` finishes it.
        case removing
    }

    /// How the container gets its network namespace.
    public enum NetworkMode: Sendable, Equatable {
        /// A new namespace with one interface per network (eth0, eth1, …).
        case networks([String])
        /// A new namespace with only loopback.
        case none
        /// The runtime's own namespace.
        case host
        /// Another container's namespace.
        case container(String)
    }

    public var id: String
    public var name: String
    public var status: Status
    public var created: String
    public var command: [String]
    public var networkMode: NetworkMode
    /// Where the network namespace is pinned; nil in host mode.
    public var netnsPath: String?
    /// False when the namespace belongs to someone else (host, container:OTHER) and must not be deleted.
    public var ownsNetns: Bool
    public var attachments: [NetworkAttachmentRecord]
    public var rootfs: String?
    public var autoRemove: Bool
    public var detached: Bool
    public var pid: Int32?
    /// The process start time (clock ticks since boot, `/proc/<pid>/stat` field 22): with the pid it
    /// identifies the process, so a recycled pid is never mistaken for the container.
    public var pidStartTime: UInt64?
    /// A detached container's monitor: the address of the robust futex list it registered, which ASLR
    /// placed anew in the `pier` it was forked from. With the pid it identifies the live monitor in one
    /// syscall (`ContainerSummary.isRunning`): a recycled pid, or a zombie (none), does not match.
    public var monitorRobustList: UInt64?
    public var exitCode: Int32?
    /// The `pier` process that wrote `creating`/`removing`: for a human reading a record a dead `pier`
    /// left (the store lock, not this pid, is what tells live operations from dead ones).
    public var ownerPID: Int32?

    public init(id: String, name: String, command: [String], networkMode: NetworkMode) {
        self.id = id
        self.name = name
        self.status = .creating
        self.created = Self.timestamp()
        self.command = command
        self.networkMode = networkMode
        self.netnsPath = nil
        self.ownsNetns = false
        self.attachments = []
        self.rootfs = nil
        self.autoRemove = false
        self.detached = false
    }

    /// The identity of one of this container's attachments: the record names the network and
    /// interface, the container is the rest.
    public func identity(of attachment: NetworkAttachmentRecord) -> Attachment {
        Attachment(network: attachment.network, containerID: id, ifName: attachment.ifName)
    }

    /// The AttachmentRequest libcni would get for `attachment`.
    func request(for attachment: NetworkAttachmentRecord) -> AttachmentRequest {
        var capabilities = JSONObject()
        if let value = try? JSONValue(parsing: attachment.capabilityArgs), let object = value.objectValue {
            capabilities = object
        }
        let pairs = attachment.cniArgs.compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
        return AttachmentRequest(
            containerID: id, netns: netnsPath ?? "", ifName: attachment.ifName, cniArgs: pairs,
            capabilityArgs: capabilities)
    }

    /// Whether the container's process is alive now.
    public var isRunning: Bool {
        guard status == .started, let pid, let pidStartTime else { return false }
        return ProcessState.isAlive(pid: pid, startTime: pidStartTime)
    }

    /// What `ps` shows: creating, created, running, exited or removing.
    public var displayStatus: String {
        switch status {
        case .creating: return "creating"
        case .created: return "created"
        case .removing: return "removing"
        case .started: return isRunning ? "running" : "exited"
        }
    }
}

/// One network a container joined, as its record keeps it: the network and interface name of
/// the attachment (the container's ID completes its `Attachment` identity, see
/// `ContainerRecord.identity(of:)`) and the arguments its ADD used, so DEL can repeat them. Its
/// JSON keys are those of `state.json`.
public struct NetworkAttachmentRecord: Sendable, Equatable {
    public var network: String
    public var ifName: String
    /// Capability arguments as a JSON object text (portMappings, ips, mac).
    public var capabilityArgs: String
    public var cniArgs: [[String]]
    /// Addresses from the ADD result, for `ps` and `inspect`.
    public var addresses: [String]

    public init(
        network: String, ifName: String, capabilityArgs: String = "{}", cniArgs: [[String]] = [],
        addresses: [String] = []
    ) {
        self.network = network
        self.ifName = ifName
        self.capabilityArgs = capabilityArgs
        self.cniArgs = cniArgs
        self.addresses = addresses
    }
}

/// Reads `/proc/<pid>/stat` to tell a live process from a dead, zombie or recycled one.
enum ProcessState {
    /// The state letter and start time of `pid`, or nil when there is no such process.
    static func stat(_ pid: Int32) -> (state: Character, startTime: UInt64)? {
        guard let bytes = try? Files.read("/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return (state, start)
    }

    static func isAlive(pid: Int32, startTime: UInt64) -> Bool {
        guard let info = stat(pid) else { return false }
        return info.startTime == startTime && info.state != "Z" && info.state != "X"
    }

    /// Waits until the process (pid and start time) has ended, up to `seconds` (nil: for ever); true
    /// when it has. A pidfd polls readable the moment the process exits, so nothing sleeps a fixed
    /// interval; the start time is checked after opening it, which rules out a recycled pid. Kernels
    /// without pidfds (before 5.3) are polled every `interval` microseconds.
    static func waitForExit(
        pid: Int32, startTime: UInt64, seconds: Double?, interval: useconds_t = 10_000
    ) -> Bool {
        let pidfd = pier_pidfd_open(pid)
        if pidfd >= 0 {
            defer { close(pidfd) }
            guard isAlive(pid: pid, startTime: startTime) else { return true }
            var wait = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
            let timeout = seconds.map { Int32(min($0 * 1000, Double(Int32.max))) } ?? -1
            var ready: Int32
            repeat { ready = poll(&wait, 1, timeout) } while ready < 0 && errno == EINTR
            return ready > 0 || !isAlive(pid: pid, startTime: startTime)
        }
        let deadline = seconds.map { ContainerProcess.monotonicSeconds() + $0 }
        while isAlive(pid: pid, startTime: startTime) {
            if let deadline, ContainerProcess.monotonicSeconds() >= deadline { return false }
            usleep(interval)
        }
        return true
    }
}

extension ContainerRecord {
    /// Now, in UTC, to the millisecond (`2026-12-04T23:30:27.125Z`), so `ps` lists containers made within
    /// one second in the order they were made. Formatted from `clock_gettime` and `gmtime_r`: Foundation's
    /// ISO 8601 style reads the time zone database and loads libm, a measurable share of `pier run`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var fields = tm()
        gmtime_r(&seconds, &fields)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return padded(fields.tm_year + 1900, 4) + "-" + padded(fields.tm_mon + 1, 2) + "-" + padded(fields.tm_mday, 2)
            + "T" + padded(fields.tm_hour, 2) + ":" + padded(fields.tm_min, 2) + ":" + padded(fields.tm_sec, 2) + "."
            + padded(Int32(now.tv_nsec / 1_000_000), 3) + "Z"
    }
}
