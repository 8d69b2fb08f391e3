import ArgumentParser
import Firewall
import IPAddressing
import PierTables
import Runtime
import Services

/// The options that make a container a service member (`run`, `create`, `network connect`).
struct ServiceMemberOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Join this service on the (first) network: its name resolves to a virtual IP balanced over the members; "
                + "tasks.NAME to every member. With it, -p publishes on every host of the network (routing mesh).",
            valueName: "name"))
    var service: String?

    @Option(name: .customLong("endpoint-mode"), help: "vip (default) or dnsrr: no VIP, the name rotates over members.")
    var endpointMode: String?

    @Option(help: "none (default) or client-ip: a client keeps its member while the member list stays.")
    var affinity: String?

    @Option(name: .customLong("service-vip"), help: "The service's VIP, instead of one from the network's IPAM.")
    var serviceVIP: String?

    /// nil without `--service`; the service options with `ports` (expanded `-p`) as mesh ports.
    func options(ports: [String]) throws(RuntimeError) -> ServiceOptions? {
        guard let service else {
            if endpointMode != nil || affinity != nil || serviceVIP != nil {
                throw RuntimeError.invalidArgument("--endpoint-mode, --affinity and --service-vip need --service")
            }
            return nil
        }
        guard let mode = ServiceRecord.EndpointMode(rawValue: endpointMode ?? "vip") else {
            throw RuntimeError.invalidArgument("invalid --endpoint-mode \(endpointMode ?? ""): vip or dnsrr")
        }
        guard let affinity = ServiceRecord.Affinity(rawValue: affinity ?? "none") else {
            throw RuntimeError.invalidArgument("invalid --affinity \(affinity ?? ""): none or client-ip")
        }
        var options = ServiceOptions(
            name: service, endpointMode: mode, affinity: affinity, vip: serviceVIP,
            published: try Self.meshPorts(ports))
        options.vip = serviceVIP
        try options.validate()
        return options
    }

    /// Expanded `-p` values (`[hostIP:]hostPort:containerPort[/proto]`) as mesh ports: the mesh
    /// answers on every address of every host, so a host IP cannot be given.
    static func meshPorts(_ ports: [String]) throws(RuntimeError) -> [PublishedServicePort] {
        try ports.map { (text: String) throws(RuntimeError) -> PublishedServicePort in
            var body = Substring(text)
            var proto = "tcp"
            if let slash = body.lastIndex(of: "/") {
                proto = String(body[body.index(after: slash)...])
                body = body[..<slash]
            }
            let parts = body.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let host = UInt16(parts[0]), let target = UInt16(parts[1]), host > 0, target > 0
            else {
                throw RuntimeError.invalidArgument(
                    "-p \(text) on a service member: give HOSTPORT:CONTAINERPORT[/PROTO]; the routing mesh "
                        + "publishes on every address of every host, so no host IP, and the host port is needed")
            }
            guard IPProtocol(name: proto) != nil, proto == "tcp" || proto == "udp" || proto == "sctp" else {
                throw RuntimeError.invalidArgument("-p \(text): protocol is tcp, udp or sctp")
            }
            return PublishedServicePort(hostPort: host, targetPort: target, protocol: proto)
        }
    }
}

struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "List and inspect services (containers join them with run --service).",
        subcommands: [ServiceList.self, ServiceInspect.self])
}

struct ServiceList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List services.")
    @OptionGroup var globals: GlobalOptions

    func run() throws {
        var rows = [["NAME", "NETWORK", "MODE", "VIP", "MEMBERS", "PUBLISHED"]]
        for service in globals.manager.serviceRecords() {
            let active = service.members.filter(\.active).count
            rows.append([
                service.name, service.network, service.endpointMode.rawValue,
                service.vips.isEmpty ? "-" : service.vips.joined(separator: ","),
                "\(active)/\(service.members.count)",
                service.published.isEmpty
                    ? "-"
                    : service.published.map { "\($0.hostPort)->\($0.targetPort)/\($0.protocol)" }.joined(
                        separator: ","),
            ])
        }
        for line in table(rows) { printLine(line) }
    }
}

struct ServiceInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show a service: VIP, members per host, published ports, its nft elements.")
    @OptionGroup var globals: GlobalOptions
    @Option(help: "The service's network, when the name is used on several.") var network: String?
    @Argument(help: "Service name.") var name: String

    func run() throws {
        let matches = globals.manager.serviceRecords().filter {
            $0.name == name && (network == nil || $0.network == network)
        }
        guard let service = matches.first else { throw PierFailure(message: "no such service: \(name)") }
        guard matches.count == 1 else {
            throw PierFailure(
                message:
                    "service \(name) is on several networks (\(matches.map(\.network).joined(separator: ", "))): give --network"
            )
        }
        var lines = [
            "Name:      \(service.name)", "Network:   \(service.network)",
            "Mode:      \(service.endpointMode.rawValue)",
            "Affinity:  \(service.affinity.rawValue)",
            "VIP:       \(service.vips.isEmpty ? "-" : service.vips.joined(separator: ", "))",
            "Published: "
                + (service.published.isEmpty
                    ? "-"
                    : service.published.map { "\($0.hostPort)->\($0.targetPort)/\($0.protocol) on every host" }
                        .joined(separator: ", ")),
            "Members:",
        ]
        var byHost: [String: [ServiceMember]] = [:]
        for member in service.members { byHost[member.host, default: []].append(member) }
        for host in byHost.keys.sorted() {
            lines.append("  \(host):")
            for member in byHost[host] ?? [] {
                lines.append(
                    "    \(member.container) \(member.ifName) \(member.addresses.joined(separator: ", ")) "
                        + (member.active ? "active" : "inactive (not running)"))
            }
        }
        lines.append("Kernel (inet pier):")
        lines += Self.kernelLines(service)
        printLine(lines.joined(separator: "\n"))
    }

    /// What the slot maps hold for the service now: the members each VIP and mesh port DNATs to.
    static func kernelLines(_ service: ServiceRecord) -> [String] {
        guard let nft = try? NFTablesClient() else { return ["  (nf_tables unreadable)"] }
        let rules = ServiceRules(client: nft)
        var lines: [String] = []
        for vip in service.vipAddresses {
            let members = (try? rules.members(vip: vip, port: nil)) ?? []
            let map = ServiceRules.vipMap(for: vip.family, affinity: service.affinity.kernel).name
            lines.append(
                "  \(map): \(vip) . slot 0-\(ServiceRules.slotsPerPort - 1) -> "
                    + (members.isEmpty ? "no elements" : members.map(\.description).joined(separator: ", ")))
        }
        for port in service.published {
            guard let servicePort = port.servicePort else { continue }
            for family in IPFamily.allCases {
                let members = (try? rules.meshMembers(family: family, port: servicePort)) ?? []
                guard !members.isEmpty else { continue }
                lines.append(
                    "  \(ServiceRules.meshMap(for: family).name): \(port.protocol) . \(port.hostPort) . slot 0-"
                        + "\(ServiceRules.slotsPerPort - 1) -> "
                        + members.map { "\($0):\(port.targetPort)" }.joined(separator: ", "))
            }
        }
        if lines.isEmpty { lines.append("  no elements") }
        return lines
    }
}

/// Keeps a detached service member's memberships true to its process (`ContainerManager.watchServiceMember`).
struct ServiceWatch: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__service-watch", shouldDisplay: false)
    @OptionGroup var globals: GlobalOptions
    @Argument var id: String

    func run() throws {
        globals.manager.watchServiceMember(id)
    }
}
