import Firewall
import IPAddressing
import Netlink

extension TraceWalk {
    /// Another subnet: the host routes the packet from the source's bridge.
    mutating func routed(_ destination: IPAddress, via gateway: IPAddress, from bridge: Link) {
        guard let address = host.addresses.first(where: { $0.prefix.address == gateway }) else {
            add("host.gateway", "host", .info, "gateway \(gateway) is not an address of this host: not traced further")
            return
        }
        let owner = host.link(index: address.index)?.name ?? "?"
        add(
            "host.gateway", "host", address.index == bridge.index ? .ok : .warn,
            "gateway \(gateway) is on \(owner)" + (address.index == bridge.index ? "" : ", not on \(bridge.name)"))
        forward(destination, port: nil, from: bridge)
    }

    /// The destination is an address of the host: published ports are DNATed to a container,
    /// anything else is delivered to the host itself.
    mutating func deliverLocally(_ destination: IPAddress, port: UInt16?, from bridge: Link) {
        guard let port else {
            add("host.local", "host", .ok, "\(destination) is an address of this host: delivered locally")
            return
        }
        let published = firewall.publishedPorts.filter { $0.protocol == "tcp" && $0.hostPort == Int(port) }
        let bound = published.first { $0.hostAddress == "\(destination)" }
        let any = published.first {
            $0.hostAddress == nil && IPAddress($0.containerAddress)?.family == destination.family
        }
        guard let hit = bound ?? any, let target = IPAddress(hit.containerAddress) else {
            let maps = destination.family == .v4 ? "dnat_v4_bound, dnat_v4" : "dnat_v6_bound, dnat_v6"
            add(
                "nat.dnat", "host", .fail,
                "no DNAT element for tcp \(Probe.endpoint(destination, port)) in inet pier (\(maps)): the port is not published",
                fix: "publish it again: recreate the container with the port mapping (portmap ADD adds the element)")
            return
        }
        add(
            "nat.dnat", "host", .ok,
            "tcp \(Probe.endpoint(destination, port)) → \(Probe.endpoint(target, UInt16(hit.containerPort)))"
                + (hit.owner.map { " (\($0))" } ?? ""))
        guard publishingRulesPresent(for: hit, family: destination.family) else { return }
        forward(target, port: UInt16(hit.containerPort), from: bridge)
    }

    /// An element is only consulted through the portmap plugin's fixed rules: the jump from
    /// `prerouting` for local destinations, and the DNAT rule of its map in `published`.
    mutating func publishingRulesPresent(for hit: PublishedPortRecord, family: IPFamily) -> Bool {
        let jump = firewall.ruleComments["prerouting"]?.contains("pier:publish") ?? false
        let suffix = family == .v4 ? "v4" : "v6"
        let wanted = "pier:publish-\(suffix)" + (hit.hostAddress == nil ? "" : "-bound")
        let dnat = firewall.ruleComments["published"]?.contains(wanted) ?? false
        guard jump && dnat else {
            let missing = [
                jump ? nil : "inet pier prerouting \"pier:publish\"", dnat ? nil : "inet pier published \"\(wanted)\"",
            ]
            .compactMap { $0 }
            add(
                "nat.rules", "host", .fail,
                "the DNAT element is never consulted: "
                    + (missing.count == 1
                        ? "rule \(missing[0]) is missing" : "rules \(missing.joined(separator: " and ")) are missing"),
                fix: "run any portmap ADD (it restores the rules), e.g. recreate a container that publishes a port")
            return false
        }
        add("nat.rules", "host", .ok, "prerouting jumps to published, which looks up \(hit.map)")
        return true
    }

    /// Routing on the host towards `target`: forwarding, route, isolation, masquerade, delivery.
    mutating func forward(_ target: IPAddress, port: UInt16?, from bridge: Link) {
        let key = target.family == .v4 ? "net/ipv4/ip_forward" : "net/ipv6/conf/all/forwarding"
        if HostChecks.sysctl(key, in: hostNamespace) == "0" {
            add(
                "host.forwarding", "host", .fail, "\(key.replacingSlashes) is 0: the host does not route",
                fix: "sysctl -w \(key.replacingSlashes)=1")
            return
        }
        guard let route = host.routeLookup(target), let out = route.outputIndex.flatMap(host.link(index:)) else {
            add("host.route", "host", .fail, "the host has no route to \(target)")
            return
        }
        add("host.route", "host", .ok, "\(target) " + (route.gateway.map { "via \($0) " } ?? "") + "dev \(out.name)")
        isolation(from: bridge, to: out)
        if failed { return }
        let conflicting = HostChecks.conflictingChains(firewall)
        if out.index != bridge.index, let chain = conflicting.first {
            add(
                "host.firewall", "host", .warn,
                "forward chain \(HostChecks.describe(chain)) drops this traffic by default unless its rules accept it",
                fix: "nft insert rule \(HostChecks.describe(chain)) iifname \"\(bridge.name)\" accept")
        }
        masquerade(target: target, out: out)
        if out.kind == .bridge {
            if let entry = host.neighbors.first(where: { $0.index == out.index && $0.address == target }),
                entry.state.contains(.failed)
            {
                add(
                    "host.neighbor", "host", .fail, "ARP/ND for \(target) on \(out.name) failed: nothing answers",
                    fix: "check that the destination container is up and holds \(target)")
                return
            }
            bridged(target, on: out)
        } else if let (path, _) = destinationNamespace(of: target) {
            destinationInterface(target, in: path)
        }
    }

    /// `inet pier forward` drops routed traffic between two isolated bridges that are not the
    /// same bridge (see PierTables).
    mutating func isolation(from bridge: Link, to out: Link) {
        let isolated = Set(firewall.keys(of: "isolated_bridges").compactMap(\.first))
        let same = Set(firewall.keys(of: "same_bridge"))
        let pair: [SetValue] = [.interfaceName(bridge.name), .interfaceName(out.name)]
        if isolated.contains(.interfaceName(bridge.name)), isolated.contains(.interfaceName(out.name)),
            !same.contains(pair)
        {
            add(
                "isolation", "host", .fail,
                "inet pier forward drops it: \(bridge.name) and \(out.name) are bridges of two isolated Pier networks",
                fix: "attach both containers to one network, or set \"isolation\": false in one network's bridge config"
            )
            return
        }
        add(
            "isolation", "host", .ok,
            bridge.index == out.index ? "same bridge" : "\(bridge.name) → \(out.name) is not isolated")
    }

    mutating func masquerade(target: IPAddress, out: Link) {
        let subnets = firewall.elements.filter { $0.set.hasSuffix(" masq_v4") || $0.set.hasSuffix(" masq_v6") }
            .compactMap { $0.comment?.split(separator: " ").last.flatMap { IPPrefix(String($0)) } }
        guard
            let source = source.addresses.first(where: { $0.family == target.family && !$0.prefix.address.isLoopback }),
            subnets.contains(where: { $0.contains(source.prefix.address) }),
            !subnets.contains(where: { $0.contains(target) })
        else { return }
        add("nat.masquerade", "host", .info, "\(source.prefix.address) is masqueraded to an address of \(out.name)")
    }
}

extension String {
    var replacingSlashes: String { split(separator: "/").joined(separator: ".") }
}
