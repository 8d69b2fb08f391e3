import CNI
import IPAddressing
import NetNS
import Netlink
import PluginSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One change ADD makes, with the change that undoes it.
struct TuningStep {
    var description: String
    var apply: () throws -> Void
    var undo: () throws -> Void
}

/// The container side of one attachment: its namespace (for sysctls) and a netlink session
/// inside it (for the interface).
struct ContainerTuning {
    let namespace: NetworkNamespace
    let netlink: RouteNetlink
    let kernel: PluginKernel
    let network: String
    let containerID: String
    let ifName: String

    init(_ request: CNIRequest, kernel: PluginKernel) throws {
        try self.init(request, namespace: kernel.openNamespace(request.netns), kernel: kernel)
    }

    private init(_ request: CNIRequest, namespace: NetworkNamespace, kernel: PluginKernel) throws {
        self.namespace = namespace
        self.netlink = try kernel.netlink(namespace)
        self.kernel = kernel
        self.network = request.config.name
        self.containerID = request.containerID
        self.ifName = request.ifName
    }

    /// Nil when there is no namespace to go back to: none given, gone, or no longer a namespace.
    static func ifPresent(_ request: CNIRequest, kernel: PluginKernel) throws -> ContainerTuning? {
        guard !request.netns.isEmpty else { return nil }
        do {
            return try ContainerTuning(request, namespace: kernel.openNamespace(request.netns), kernel: kernel)
        } catch let error as NamespaceError where error.isNotFound || error.errno == EINVAL {
            return nil
        }
    }

    // MARK: ADD

    /// Reads every current value first, so a key naming no sysctl and a missing interface are
    /// refused before anything changes. Values that are already as asked are left alone.
    func plan(_ settings: TuningSettings) throws -> (steps: [TuningStep], originals: SavedSettings) {
        var originals = SavedSettings()
        originals.network = network
        originals.containerID = containerID
        originals.ifName = ifName
        var steps: [TuningStep] = []

        for setting in settings.sysctls {
            let current = try readSysctl(setting.key)
            guard !sameSysctlValue(current, setting.value) else { continue }
            originals.sysctls.append((setting.key.path, current))
            steps.append(
                TuningStep(
                    description: "sysctl \(setting.key.dotted)=\(setting.value)",
                    apply: { try writeSysctl(setting.key, setting.value) },
                    undo: { try writeSysctl(setting.key, current) }))
        }
        guard settings.changesLink else { return (steps, originals) }

        let link = try containerLink()
        let index = link.index
        if let mac = settings.mac, let old = link.link.mac, old != mac {
            originals.mac = old.description
            steps.append(
                TuningStep(
                    description: "MAC \(mac)", apply: { try netlink.setMAC(index: index, mac) },
                    undo: { try netlink.setMAC(index: index, old) }))
        }
        if let on = settings.promiscuous, on != link.isPromiscuous {
            originals.promiscuous = link.isPromiscuous
            steps.append(
                TuningStep(
                    description: "promiscuous mode \(on ? "on" : "off")",
                    apply: { try netlink.setPromiscuous(index: index, on) },
                    undo: { try netlink.setPromiscuous(index: index, !on) }))
        }
        if let mtu = settings.mtu, let old = link.link.mtu, old != mtu {
            originals.mtu = old
            steps.append(
                TuningStep(
                    description: "MTU \(mtu)", apply: { try netlink.setMTU(index: index, mtu) },
                    undo: { try netlink.setMTU(index: index, old) }))
        }
        if let on = settings.allMulticast, on != link.isAllMulticast {
            originals.allMulticast = link.isAllMulticast
            steps.append(
                TuningStep(
                    description: "all-multicast mode \(on ? "on" : "off")",
                    apply: { try netlink.setAllMulticast(index: index, on) },
                    undo: { try netlink.setAllMulticast(index: index, !on) }))
        }
        if let length = settings.transmitQueueLength, let old = link.transmitQueueLength, old != length {
            originals.transmitQueueLength = old
            steps.append(
                TuningStep(
                    description: "txqueuelen \(length)",
                    apply: { try netlink.setTransmitQueueLength(index: index, length) },
                    undo: { try netlink.setTransmitQueueLength(index: index, old) }))
        }
        return (steps, originals)
    }

    /// Applies the steps in order; when one fails, undoes those already done, newest first, so
    /// a refused ADD leaves the container as it found it.
    func run(_ steps: [TuningStep]) throws {
        for (position, step) in steps.enumerated() {
            do {
                try step.apply()
            } catch {
                for done in steps[..<position].reversed() {
                    do { try done.undo() } catch { cniLog("tuning: could not undo \(done.description): \(error)") }
                }
                throw refusal(error, step: step.description)
            }
        }
    }

    /// The kernel refusing a value (EINVAL, ERANGE; EADDRNOTAVAIL for a MAC; EOPNOTSUPP from a
    /// device that cannot change it) is a config error.
    private func refusal(_ error: any Error, step: String) -> CNIError {
        let errno: Int32? =
            (error as? Sysctl.Failure)?.errno
            ?? (error as? NetlinkError).flatMap { $0.kind == .kernel ? $0.errno : nil }
        if let errno, [EINVAL, ERANGE, EADDRNOTAVAIL, EOPNOTSUPP].contains(errno) {
            return CNIError(.invalidNetworkConfig, "the kernel refused \(step) on \(ifName): \(error)")
        }
        let converted = CNIError(converting: error)
        return CNIError(converted.code, "setting \(step) on \(ifName): \(converted.msg)", details: converted.details)
    }

    // MARK: DEL

    /// Puts every saved value back (link settings first, then sysctls newest first) and returns
    /// what could not be restored. What is gone (the interface, an interface's sysctls) needs
    /// no restoring.
    func restore(_ saved: SavedSettings) -> [String] {
        var steps: [(what: String, body: () throws -> Void)] = []
        var failures: [String] = []
        var link: Link?
        do { link = try netlink.linkIfPresent(named: ifName) } catch { failures.append("\(ifName): \(error)") }
        if let link {
            let index = link.index
            if let mtu = saved.mtu { steps.append(("MTU \(mtu)", { try netlink.setMTU(index: index, mtu) })) }
            if let text = saved.mac {
                steps.append(
                    (
                        "MAC \(text)",
                        {
                            guard let mac = MACAddress(text) else {
                                throw CNIError(.decodingFailure, "not a MAC address")
                            }
                            try netlink.setMAC(index: index, mac)
                        }
                    ))
            }
            if let on = saved.promiscuous {
                steps.append(("promiscuous mode", { try netlink.setPromiscuous(index: index, on) }))
            }
            if let on = saved.allMulticast {
                steps.append(("all-multicast mode", { try netlink.setAllMulticast(index: index, on) }))
            }
            if let length = saved.transmitQueueLength {
                steps.append(("txqueuelen \(length)", { try netlink.setTransmitQueueLength(index: index, length) }))
            }
        }
        for (path, value) in saved.sysctls.reversed() {
            steps.append(("sysctl \(path)=\(value)", { try restoreSysctl(path, value) }))
        }
        for step in steps {
            do { try step.body() } catch { failures.append("\(step.what): \(error)") }
        }
        return failures
    }

    /// An interface's sysctl that is gone went with the interface: nothing to restore.
    private func restoreSysctl(_ path: String, _ value: String) throws {
        do {
            try kernel.sysctls(namespace) { try $0.write(path, value) }
        } catch let error as Sysctl.Failure where error.errno == ENOENT {}
    }

    // MARK: CHECK

    func verify(_ settings: TuningSettings) throws {
        for setting in settings.sysctls {
            let current = try readSysctl(setting.key)
            guard sameSysctlValue(current, setting.value) else {
                throw CNIError(
                    .internalError, "sysctl \(setting.key.dotted) is \"\(current)\", configured \"\(setting.value)\"")
            }
        }
        guard settings.changesLink else { return }
        let link = try containerLink()
        var checks: [(what: String, configured: String, current: String)] = []
        if let mac = settings.mac { checks.append(("MAC", mac.description, link.link.mac?.description ?? "none")) }
        if let mtu = settings.mtu { checks.append(("MTU", "\(mtu)", link.link.mtu.map { "\($0)" } ?? "unknown")) }
        if let on = settings.promiscuous { checks.append(("promiscuous mode", "\(on)", "\(link.isPromiscuous)")) }
        if let on = settings.allMulticast {
            checks.append(("all-multicast mode", "\(on)", "\(link.isAllMulticast)"))
        }
        if let length = settings.transmitQueueLength {
            checks.append(("txqueuelen", "\(length)", link.transmitQueueLength.map { "\($0)" } ?? "unknown"))
        }
        if let wrong = checks.first(where: { $0.configured != $0.current }) {
            throw CNIError(
                .internalError, "\(ifName) \(wrong.what) is \(wrong.current), configured \(wrong.configured)")
        }
    }

    // MARK: Kernel access

    private func containerLink() throws -> TunableLink {
        do {
            return try netlink.tunableLink(named: ifName)
        } catch {
            // A plain `catch where` on this typed-throws call crashes the Swift 6.3 compiler.
            guard error.isNotFound else { throw error }
            throw CNIError(.internalError, "the container has no interface \(ifName) in \(namespace.path)")
        }
    }

    private func readSysctl(_ key: SysctlKey) throws -> String {
        do {
            return try kernel.withSysctls(in: namespace) { try $0.read(key.path) }
        } catch let error as Sysctl.Failure where [ENOENT, EISDIR, ENOTDIR].contains(error.errno) {
            throw CNIError(
                .invalidNetworkConfig,
                "sysctl \"\(key.key)\": there is no /proc/sys/\(key.path) in the container's network namespace")
        }
    }

    private func writeSysctl(_ key: SysctlKey, _ value: String) throws {
        try kernel.sysctls(namespace) { try $0.write(key.path, value) }
    }
}
