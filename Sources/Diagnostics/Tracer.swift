import IPAddressing
import NetNS
import Netlink
import PierState

/// What to trace: from a namespace to an address (and a TCP port), optionally naming the
/// destination's namespace when it is not one the result cache knows.
public struct TraceRequest: Sendable {
    public var fromNetns: String
    public var destination: IPAddress
    public var port: UInt16?
    public var toNetns: String?
    /// Send real packets after the walk (tests of the walk alone may skip them).
    public var probe: Bool

    public init(
        fromNetns: String, destination: IPAddress, port: UInt16? = nil, toNetns: String? = nil, probe: Bool = true
    ) {
        self.fromNetns = fromNetns
        self.destination = destination
        self.port = port
        self.toNetns = toNetns
        self.probe = probe
    }
}

/// `pier trace`: walks the path a packet takes from kernel state, hop by hop, stopping at the
/// first hop that is wrong, then sends real packets from inside the source namespace.
public struct Tracer {
    public let host: NetworkNamespace
    public let paths: StatePaths

    public init(host: NetworkNamespace, paths: StatePaths) {
        self.host = host
        self.paths = paths
    }

    public func trace(_ request: TraceRequest) throws(DiagnosticsError) -> TraceReport {
        let source = try openNamespace(request.fromNetns)
        var walk = TraceWalk(
            source: try snapshot(of: source, includeFDB: false), sourcePath: request.fromNetns,
            host: try snapshot(of: host), hostNamespace: host, firewall: firewallSnapshot(of: host),
            cached: ResultCacheReader(cacheDirectory: paths.cacheDirectory).all(), toNetns: request.toNetns)
        walk.run(destination: request.destination, port: request.port)
        var probes: [ProbeResult] = []
        if request.probe {
            probes.append(Probe.echo(from: source, to: request.destination))
            if let port = request.port {
                probes.append(Probe.connect(from: source, to: request.destination, port: port))
            }
        }
        let target = request.port.map { Probe.endpoint(request.destination, $0) } ?? "\(request.destination)"
        return Self.report(from: request.fromNetns, to: target, hops: walk.hops, probes: probes)
    }

    static func report(from: String, to: String, hops: [TraceHop], probes: [ProbeResult]) -> TraceReport {
        let failure = hops.firstIndex { $0.status == .fail }
        let unanswered = probes.filter { !$0.reached }
        let summary: String
        if let failure {
            summary = "broken at hop \(failure + 1) (\(hops[failure].step)): \(hops[failure].detail)"
        } else if let probe = unanswered.first {
            let outcome =
                "the \(probe.kind) probe to \(probe.target) got \(probe.result)"
                + (probe.detail.map { " (\($0))" } ?? "")
            if let warning = hops.firstIndex(where: { $0.status == .warn }) {
                summary = "\(outcome); suspect hop \(warning + 1) (\(hops[warning].step)): \(hops[warning].detail)"
            } else {
                summary = "kernel state along the path looks right, but \(outcome)"
            }
        } else {
            let answered = probes.first.map { ", \($0.kind) \($0.result) in \($0.milliseconds ?? 0) ms" } ?? ""
            summary = "path is healthy: \(hops.count) hops checked\(answered)"
        }
        let healthy = failure == nil && unanswered.isEmpty
        return TraceReport(
            from: from, to: to, hops: hops, probes: probes, verdict: healthy ? "healthy" : "broken",
            firstFailure: failure, summary: summary)
    }
}

/// The state a walk reads, and the hops it has found so far.
struct TraceWalk {
    let source: NamespaceSnapshot
    let sourcePath: String
    let host: NamespaceSnapshot
    let hostNamespace: NetworkNamespace
    let firewall: FirewallSnapshot
    let cached: [CachedResult]
    let toNetns: String?
    var hops: [TraceHop] = []
    /// The source's host veth, once found.
    var sourcePeer: Link?

    var failed: Bool { hops.contains { $0.status == .fail } }

    mutating func add(
        _ step: String, _ location: String, _ status: TraceHop.Status, _ detail: String, fix: String? = nil
    ) {
        hops.append(TraceHop(step: step, location: location, status: status, detail: detail, fix: fix))
    }

    /// Source side: route lookup, egress interface, its host peer and bridge port; then the
    /// host decides between bridging (same subnet) and routing (via the gateway).
    mutating func run(destination: IPAddress, port: UInt16?) {
        guard let route = source.routeLookup(destination) else {
            add(
                "source.route", "source", .fail, "no route to \(destination) in \(sourcePath)",
                fix: "give the network a gateway (isDefaultGateway) or add a route in the container")
            return
        }
        if route.table == 255 {
            add("source.route", "source", .ok, "\(destination) is an address of the source itself")
            return
        }
        guard let index = route.outputIndex, let egress = source.link(index: index) else {
            add("source.route", "source", .fail, "the route to \(destination) names no usable interface")
            return
        }
        let via = route.gateway.map { "via \($0) " } ?? "directly "
        add("source.route", "source", .ok, "\(destination) \(via)dev \(egress.name)")
        guard egress.isUp else {
            add(
                "source.interface", "source", .fail, "\(egress.name) is administratively down",
                fix: "\(ipCommand(sourcePath)) link set \(egress.name) up")
            return
        }
        add("source.interface", "source", .ok, "\(egress.name) is up (operational state \(Describe.state(egress)))")
        guard let bridge = hostSide(of: egress) else { return }
        if let member = serviceHop(destination) {
            forward(member, port: port, from: bridge)
        } else if host.isLocal(destination) {
            deliverLocally(destination, port: port, from: bridge)
        } else if route.gateway == nil {
            bridged(destination, on: bridge)
        } else if let gateway = route.gateway {
            routed(destination, via: gateway, from: bridge)
        }
    }

    /// The host end of the source's veth and the bridge it is a port of; nil when the walk
    /// ends here (a failure, or an interface kind whose host side is not a bridge port).
    mutating func hostSide(of egress: Link) -> Link? {
        guard egress.kind == .veth, egress.linkNetnsID != nil, let peerIndex = egress.linkIndex,
            let peer = host.link(index: peerIndex), peer.linkIndex == egress.index
        else {
            add(
                "host.veth", "host", .info,
                "\(egress.name) is a \(egress.kind?.rawValue ?? "device") without a veth peer on this host: host side not traced"
            )
            return nil
        }
        guard peer.isUp else {
            add(
                "host.veth", "host", .fail, "host veth \(peer.name) (peer of \(egress.name)) is down",
                fix: "ip link set \(peer.name) up")
            return nil
        }
        add("host.veth", "host", .ok, "\(peer.name) is up")
        sourcePeer = peer
        guard let masterIndex = peer.masterIndex, let bridge = host.link(index: masterIndex) else {
            add(
                "bridge.port", "host", .fail, "host veth \(peer.name) is not a port of any bridge",
                fix: "recreate the attachment (pier rm -f, pier run), or: ip link set \(peer.name) master <bridge>")
            return nil
        }
        guard bridge.isUp else {
            add("bridge.port", "host", .fail, "bridge \(bridge.name) is down", fix: "ip link set \(bridge.name) up")
            return nil
        }
        if let state = peer.bridgePortState, state != 3 {
            add(
                "bridge.port", "host", .fail,
                "\(peer.name) is in STP state \(Self.stpState(state)) on \(bridge.name): it does not forward",
                fix:
                    "wait for the STP forward delay, or turn STP off: ip link set \(bridge.name) type bridge stp_state 0"
            )
            return nil
        }
        let flags = [
            peer.bridgePort?.isolated == true ? "isolated" : nil, peer.bridgePort?.hairpin == true ? "hairpin" : nil,
        ]
        .compactMap { $0 }
        add(
            "bridge.port", "host", .ok,
            "\(peer.name) is a forwarding port of \(bridge.name)"
                + (flags.isEmpty ? "" : " (\(flags.joined(separator: ", ")))"))
        return bridge
    }

    static func stpState(_ state: UInt8) -> String {
        ["disabled", "listening", "learning", "forwarding", "blocking"].indices.contains(Int(state))
            ? ["disabled", "listening", "learning", "forwarding", "blocking"][Int(state)] : "\(state)"
    }

    /// `ip` pointed at a namespace: `ip -n NAME` for named ones, nsenter otherwise.
    func ipCommand(_ path: String) -> String {
        // `ip -n` knows only the standard directory.
        let named = DefaultPaths.netnsDirectory + "/"
        return path.hasPrefix(named) ? "ip -n \(path.dropFirst(named.count))" : "nsenter --net=\(path) ip"
    }
}
