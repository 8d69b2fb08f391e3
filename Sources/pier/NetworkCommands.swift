import ArgumentParser
import CNI
import Diagnostics
import IPAddressing
import Runtime

struct Network: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Network configs in the config directory.",
        subcommands: [
            NetworkCreate.self, NetworkList.self, NetworkInspect.self, NetworkRemove.self, NetworkPrune.self,
            NetworkConnect.self, NetworkDisconnect.self,
        ])
}

struct NetworkCreate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a network: a conflist in the config directory that any libcni runtime can use.",
        discussion: """
            bridge networks chain portmap (unless --internal) and, when it is on the CNI path, the name service. \
            Without --subnet, bridge and vxlan-overlay networks get the first free one of 172.17.0.0/16 … \
            172.31.0.0/16, 192.168.0.0/20 … 192.168.240.0/20; --ipv6 without an IPv6 --subnet adds a unique local \
            /64 derived from the name. Driver options: bridge: bridge, mtu, hairpinMode, isolation, vlan; macvlan: \
            parent, mode, mtu; vxlan-overlay: vni, underlay, port, mtu, store (a file store directory), runDir; \
            host-device: device, hwaddr, pciBusID.
            """)
    @OptionGroup var globals: GlobalOptions
    @Option(name: [.customShort("d"), .customLong("driver")], help: "bridge, macvlan, vxlan-overlay or host-device.")
    var driver = "bridge"
    @Option(help: "A subnet in CIDR form, IPv4 or IPv6 (repeatable).") var subnet: [String] = []
    @Option(help: "The gateway of the subnet that contains it (repeatable).") var gateway: [String] = []
    @Option(name: .customLong("ip-range"), help: "Allocate only from this CIDR of the subnet containing it.")
    var ipRange: [String] = []
    @Flag(help: "Give the network an IPv6 subnet too.") var ipv6 = false
    @Flag(
        help: "No masquerade, no default route, no published ports, no upstream DNS: containers reach each other only.")
    var `internal` = false
    @Option(name: [.customShort("o"), .customLong("opt")], help: "Driver option KEY=VALUE (repeatable).")
    var opt: [String] = []
    @Option(name: .customLong("ipam-driver"), help: "IPAM plugin type.") var ipamDriver = "ipam"
    @Option(name: .customLong("ipam-opt"), help: "IPAM option KEY=VALUE, e.g. dataDir=/var/lib/cni/networks.")
    var ipamOpt: [String] = []
    @Option(help: "Label KEY=VALUE kept in the conflist (repeatable).") var label: [String] = []
    @Option(help: "An upstream resolver of the network's name service (repeatable; default: the host's).")
    var dns: [String] = []
    @Option(name: .customLong("dns-search"), help: "A search domain for the network's containers (repeatable).")
    var dnsSearch: [String] = []
    @Option(name: .customLong("dns-option"), help: "A resolv.conf option for its containers, e.g. ndots:2.")
    var dnsOption: [String] = []
    @Option(name: .customLong("dns-opt"), help: "Name service option KEY=VALUE: domainName, dataDir.")
    var dnsOpt: [String] = []
    @Argument(help: "Network name.") var name: String

    func run() throws {
        let spec = try NetworkCreate.spec(self)
        _ = try reporting { () throws(RuntimeError) in try globals.manager.createNetwork(spec) }
        printLine(name)
    }

    static func pairs(_ values: [String], option: String) throws -> [(String, String)] {
        try values.map { text in
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                throw PierFailure(message: "invalid \(option) \(text): expected KEY=VALUE")
            }
            return (String(text[..<equals]), String(text[text.index(after: equals)...]))
        }
    }

    /// Each --gateway and --ip-range goes with the --subnet that contains it, as Docker pairs them.
    static func spec(_ command: NetworkCreate) throws -> NetworkSpec {
        guard let driver = NetworkDriver(rawValue: command.driver) else {
            throw PierFailure(
                message: "unknown driver \(command.driver): use "
                    + NetworkDriver.allCases.map(\.rawValue).joined(separator: ", "))
        }
        var spec = NetworkSpec(name: command.name, driver: driver)
        for text in command.subnet {
            guard let prefix = IPPrefix(text) else {
                throw PierFailure(message: "invalid --subnet \(text): expected CIDR")
            }
            guard prefix.network == prefix else {
                throw PierFailure(message: "invalid --subnet \(text): host bits set (did you mean \(prefix.network)?)")
            }
            spec.subnets.append(SubnetRequest(subnet: prefix))
        }
        for text in command.gateway {
            guard let address = IPAddress(text) else { throw PierFailure(message: "invalid --gateway \(text)") }
            guard let index = spec.subnets.firstIndex(where: { $0.subnet.contains(address) }) else {
                throw PierFailure(message: "--gateway \(text) is in no --subnet")
            }
            guard spec.subnets[index].gateway == nil else {
                throw PierFailure(
                    message: "--gateway \(text): subnet \(spec.subnets[index].subnet) has a gateway already")
            }
            spec.subnets[index].gateway = address
        }
        for text in command.ipRange {
            guard let range = IPPrefix(text) else {
                throw PierFailure(message: "invalid --ip-range \(text): expected CIDR")
            }
            guard
                let index = spec.subnets.firstIndex(where: {
                    $0.subnet.contains(range.firstAddress) && $0.subnet.length <= range.length
                })
            else { throw PierFailure(message: "--ip-range \(text) is in no --subnet") }
            guard spec.subnets[index].ipRange == nil else {
                throw PierFailure(
                    message: "--ip-range \(text): subnet \(spec.subnets[index].subnet) has an ip range already")
            }
            spec.subnets[index].ipRange = range.network
        }
        spec.ipv6 = command.ipv6
        spec.isInternal = command.internal
        spec.options = try pairs(command.opt, option: "--opt")
        spec.ipamOptions = try pairs(command.ipamOpt, option: "--ipam-opt")
        spec.ipamDriver = command.ipamDriver
        spec.labels = try pairs(command.label, option: "--label")
        try CapabilityArgs.validateDNS(servers: command.dns, search: command.dnsSearch, options: command.dnsOption)
        spec.dnsServers = command.dns.compactMap(IPAddress.init)
        spec.dnsSearch = command.dnsSearch
        spec.dnsOptions = command.dnsOption
        spec.nameServiceOptions = try pairs(command.dnsOpt, option: "--dns-opt")
        return spec
    }
}

struct NetworkList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List networks (as libcni finds them): driver, subnets, containers.")
    @OptionGroup var globals: GlobalOptions

    func run() throws {
        let store = NetworkConfigStore(directory: globals.environment.configDirectory)
        let records = globals.manager.list()
        var rows = [["NAME", "DRIVER", "SUBNETS", "CONTAINERS", "PLUGINS", "FILE"]]
        var seen = Set<String>()
        for entry in store.entries() {
            guard let list = entry.list else {
                rows.append(["(invalid)", "", "", "", entry.problem ?? "", entry.path])
                continue
            }
            // libcni uses the first file with a name; later ones are shadowed.
            let shadowed = seen.contains(list.name)
            let name = shadowed ? "\(list.name) (shadowed)" : list.name
            seen.insert(list.name)
            let attached = shadowed ? [] : records.filter { $0.attachments.contains { $0.network == list.name } }
            rows.append([
                name, NetworkTemplates.driver(of: list),
                NetworkTemplates.subnets(of: list).map(\.description).joined(separator: ","),
                attached.map(\.name).joined(separator: ","), list.plugins.map(\.type).joined(separator: ","),
                entry.path,
            ])
        }
        for line in table(rows) { printLine(line) }
    }
}

struct NetworkRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove networks pier created (refused while containers are attached).")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.customShort("f"), .customLong("force")], help: "Disconnect attached containers first.")
    var force = false
    @Argument(help: "Network names.") var networks: [String]

    func run() throws {
        let manager = globals.manager
        try forEachContainer(networks) { (network) throws(RuntimeError) in
            for warning in try manager.removeNetwork(network, force: force) { printError("pier: warning: \(warning)") }
        }
    }
}

struct NetworkPrune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Remove every network pier created that no container uses.")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.customShort("f"), .customLong("force")], help: "Do not ask (pier never asks; accepted as Docker's).")
    var force = false

    func run() throws {
        let removed = try reporting { () throws(RuntimeError) in try globals.manager.pruneNetworks() }
        for name in removed { printLine(name) }
    }
}

struct NetworkConnect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect", abstract: "Attach a container to a network: ADD its next interface (eth1, …).")
    @OptionGroup var globals: GlobalOptions
    @Option(help: "Another name of the container on this network (repeatable).") var alias: [String] = []
    @Option(help: "A fixed address on this network (its config must declare the `ips` capability).")
    var ip: [String] = []
    @OptionGroup var serviceMember: ServiceMemberOptions
    @Argument(help: "Network name.") var network: String
    @Argument(help: "Container name or ID.") var container: String

    func run() throws {
        _ = try reporting { () throws(RuntimeError) in
            try globals.manager.connect(
                network: network, container: container, aliases: alias, ips: ip,
                service: try serviceMember.options(ports: []))
        }
    }
}

struct NetworkDisconnect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disconnect", abstract: "Detach a container from a network: DEL its interface there.")
    @OptionGroup var globals: GlobalOptions
    @Flag(name: [.customShort("f"), .customLong("force")], help: "Drop the attachment even when its DEL fails.")
    var force = false
    @Argument(help: "Network name.") var network: String
    @Argument(help: "Container name or ID.") var container: String

    func run() throws {
        try reporting { () throws(RuntimeError) in
            try globals.manager.disconnect(network: network, container: container, force: force)
        }
    }
}

struct NetworkInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a network: config, devices, leases, attachments, masquerade, isolation, nftables elements.")
    @OptionGroup var options: DiagnosticsOptions
    @Argument var name: String

    func run() throws {
        let inspector = NetworkInspector(
            host: try options.hostNamespace(), paths: options.paths, containers: options.containers)
        let report: NetworkReport
        do { report = try inspector.inspect(network: name) } catch { throw failure("\(error)") }
        options.emit(options.json ? ReportJSON.encode(report) : report.render(style: .forStandardOutput))
    }
}
