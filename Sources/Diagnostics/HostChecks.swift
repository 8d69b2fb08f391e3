import CNI
import ClusterStore
import Firewall
import NetNS
import PierState
import PierTables

/// Host settings that decide whether container traffic can leave its bridge.
enum HostChecks {
    /// `/proc/sys/net` follows the calling thread's namespace, so reads happen inside `host`.
    static func sysctl(_ key: String, in host: NetworkNamespace) -> String? {
        try? host.perform { () throws(Sysctl.Failure) -> String in try Sysctl.read(key) }
    }

    /// IPv6 forwarding only matters when some network has IPv6 subnets. Off is an error only
    /// while Pier's bridges exist: a gateway network's first ADD turns it on, so on a host
    /// without containers it only warns that something may turn it off again.
    static func forwarding(in host: NetworkNamespace, ipv6: Bool, inUse: Bool) -> [Finding] {
        var findings: [Finding] = []
        let v4 = sysctl("net/ipv4/ip_forward", in: host)
        if v4 == "1" {
            findings.append(Finding(check: "host.ip_forward", severity: .ok, message: "IPv4 forwarding is on"))
        } else {
            findings.append(
                Finding(
                    check: "host.ip_forward", severity: inUse ? .error : .warning, subject: "net.ipv4.ip_forward",
                    message: inUse
                        ? "IPv4 forwarding is off: containers reach their bridge but nothing beyond it"
                        : "IPv4 forwarding is off (a gateway network's first ADD turns it on)",
                    fix:
                        "sysctl -w net.ipv4.ip_forward=1, and persist it: echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-pier.conf"
                ))
        }
        if ipv6, sysctl("net/ipv6/conf/all/forwarding", in: host) == "0" {
            findings.append(
                Finding(
                    check: "host.ipv6_forwarding", severity: .warning, subject: "net.ipv6.conf.all.forwarding",
                    message: "IPv6 forwarding is off: IPv6 container traffic stays on its bridge",
                    fix: "sysctl -w net.ipv6.conf.all.forwarding=1 (Pier turns it on for gateway networks with IPv6)"))
        }
        return findings
    }

    /// br_netfilter makes bridged (same-bridge) frames traverse the IP hooks: then a drop policy
    /// meant for routed traffic also cuts containers of one bridge off from each other.
    static func bridgeNetfilter(in host: NetworkNamespace, dropChains: [Chain]) -> Finding {
        guard let value = sysctl("net/bridge/bridge-nf-call-iptables", in: host) else {
            return Finding(
                check: "host.br_netfilter", severity: .ok,
                message: "br_netfilter is not loaded: bridged traffic is not filtered")
        }
        guard value == "1" else {
            return Finding(
                check: "host.br_netfilter", severity: .ok, message: "bridge-nf-call-iptables is off")
        }
        let fix =
            "sysctl -w net.bridge.bridge-nf-call-iptables=0 (and bridge-nf-call-ip6tables) unless something "
            + "on this host needs bridged traffic filtered (e.g. Kubernetes); otherwise accept Pier's bridges in the forward chains"
        if dropChains.isEmpty {
            return Finding(
                check: "host.br_netfilter", severity: .warning, subject: "net.bridge.bridge-nf-call-iptables",
                message:
                    "bridged traffic between containers passes the IP forward hooks: any drop rule there also cuts containers of one bridge apart",
                fix: fix)
        }
        return Finding(
            check: "host.br_netfilter", severity: .error, subject: "net.bridge.bridge-nf-call-iptables",
            message:
                "bridged traffic passes the IP forward hooks, and \(dropChains.map(describe).joined(separator: ", ")) drops forwarded traffic: containers of one bridge cannot reach each other",
            fix: fix)
    }

    /// Forward chains that drop Pier's traffic: other IP tables' dropping forward chains where
    /// Pier's accept rule is missing or cannot work (the chain runs before Pier marks its
    /// traffic), bridge-family forward chains with policy drop (they run before the IP hook,
    /// so Pier's mark cannot help there), and firewalld's forward chain whatever its policy: its
    /// zones may reject container traffic before Pier's rule ahead of its final reject is reached.
    static func conflictingChains(_ firewall: FirewallSnapshot) -> [Chain] {
        let bridgeChains = firewall.baseChains.filter { chain in
            guard let base = chain.base, base.hook == .forward, base.type == .filter else { return false }
            return isFirewalld(chain) || (chain.family == .bridge && base.policy == .drop && chain.table != "pier")
        }
        let unaccepted = firewall.foreignForward.filter { $0.drops != nil && !isFirewalld($0.chain) }
            .filter { !$0.hasPierAccept || $0.runsBeforeMarking }.map(\.chain)
        return bridgeChains + unaccepted
    }

    static func isFirewalld(_ chain: Chain) -> Bool { chain.family == .inet && chain.table == "firewalld" }

    /// One finding per forward chain of another table that drops by default: fine when Pier's
    /// accept rule is in it, an error naming the fix when it is not.
    static func firewall(_ firewall: FirewallSnapshot, bridges: [String]) -> [Finding] {
        let conflicting = conflictingChains(firewall)
        let accepted = firewall.foreignForward.filter {
            $0.drops != nil && $0.hasPierAccept && !$0.runsBeforeMarking && !isFirewalld($0.chain)
        }
        guard !conflicting.isEmpty || !accepted.isEmpty else {
            return [Finding(check: "host.firewall", severity: .ok, message: "no forward chain drops by policy")]
        }
        let names = bridges.isEmpty ? ["<bridge>"] : bridges
        let findings = accepted.map { foreign in
            Finding(
                check: "host.firewall", severity: .ok, subject: foreign.name,
                message:
                    "forward chain \(foreign.name) \(dropDescription(foreign)); Pier's accept rule for its own (marked) traffic is in place"
            )
        }
        return findings
            + conflicting.map { chain in
                if isFirewalld(chain) {
                    // Rules inserted into firewalld's table vanish at its next reload; a zone persists.
                    // A warning: whether a zone already accepts the bridges is in rules not read here.
                    let accepted = firewall.foreignForward.contains { $0.chain == chain && $0.hasPierAccept }
                    return Finding(
                        check: "host.firewall", severity: .warning, subject: describe(chain),
                        message:
                            "firewalld filters forwarded traffic: container traffic is rejected unless Pier's bridges are in a zone that accepts it"
                            + (accepted
                                ? " (Pier's accept rule sits before its final reject, but a zone's rules may reject first)"
                                : ""),
                        fix: names.map { "firewall-cmd --permanent --zone=trusted --add-interface=\($0)" }
                            .joined(separator: "; ") + "; firewall-cmd --reload")
                }
                let traffic =
                    chain.family == .bridge
                    ? "traffic between containers of one bridge"
                    : "routed container traffic (to other networks, the outside, published ports)"
                if let foreign = firewall.foreignForward.first(where: { $0.chain == chain }) {
                    if foreign.runsBeforeMarking {
                        return Finding(
                            check: "host.firewall", severity: .error, subject: describe(chain),
                            message:
                                "forward chain \(describe(chain)) \(dropDescription(foreign)) and runs at priority \(chain.base?.priority ?? 0), before Pier marks its traffic (inet pier forward_mark, priority \(PierTable.markPriority)): \(traffic) is dropped unless its rules accept it",
                            fix: "accept Pier's bridges in that chain: " + manualRules(chain, names)
                                + iptablesHint(chain, names))
                    }
                    // Without a network of Pier's there is no traffic to drop yet; the first
                    // network's ADD puts the rule in.
                    return Finding(
                        check: "host.firewall", severity: bridges.isEmpty ? .warning : .error, subject: describe(chain),
                        message:
                            "forward chain \(describe(chain)) \(dropDescription(foreign)) and Pier's accept rule for its own (marked) traffic is missing: \(traffic) is dropped",
                        fix:
                            "pier firewall reload (puts Pier's accept rule back; `pier firewall reload --watch` keeps it there)"
                    )
                }
                return Finding(
                    check: "host.firewall", severity: .error, subject: describe(chain),
                    message:
                        "forward chain \(describe(chain)) has policy drop: \(traffic) is dropped unless its rules accept it",
                    fix: "accept Pier's bridges in that chain: " + manualRules(chain, names))
            }
    }

    static func dropDescription(_ foreign: ForeignForwardChain) -> String {
        switch foreign.drops {
        case .policyDrop: "has policy drop"
        case .finalRule: "ends in a rule that drops everything"
        case nil: "no longer drops by default"
        }
    }

    /// `nft insert` lines that accept Pier's bridges in `chain`. Bridge-family chains see the
    /// bridge as `ibrname`; IP-family ones see it as the routed packet's input or output interface.
    static func manualRules(_ chain: Chain, _ names: [String]) -> String {
        let prefix = "nft insert rule \(describe(chain))"
        return names.flatMap { bridge in
            chain.family == .bridge
                ? ["\(prefix) ibrname \"\(bridge)\" accept"]
                : [
                    "\(prefix) iifname \"\(bridge)\" accept",
                    "\(prefix) oifname \"\(bridge)\" ct state established,related accept",
                ]
        }.joined(separator: "; ")
    }

    /// iptables-nft's tables (Docker's, ufw's) are better extended with iptables itself: it keeps
    /// them readable for their owner, and Docker keeps `DOCKER-USER` across its restarts.
    static func iptablesHint(_ chain: Chain, _ bridges: [String]) -> String {
        guard chain.table == "filter", chain.name == "FORWARD", chain.family == .ip || chain.family == .ip6 else {
            return ""
        }
        let tool = chain.family == .ip ? "iptables" : "ip6tables"
        let rules = bridges.flatMap { bridge in
            [
                "\(tool) -I DOCKER-USER -i \(bridge) -j ACCEPT",
                "\(tool) -I DOCKER-USER -o \(bridge) -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            ]
        }
        return ". With Docker (its DOCKER-USER chain), instead: " + rules.joined(separator: "; ")
    }

    static func describe(_ chain: Chain) -> String { "\(chain.family.name) \(chain.table) \(chain.name)" }

    static func store(at path: String) -> [Finding] {
        var findings: [Finding] = []
        if FileSystem.isDirectory(path) {
            do {
                try FileClusterStore(path: path).checkHealth()
                findings.append(
                    Finding(
                        check: "store.file", severity: .ok, subject: path,
                        message: "file store is readable and writable"))
            } catch {
                findings.append(
                    Finding(
                        check: "store.file", severity: .error, subject: path,
                        message: "file store is unusable: \(error)",
                        fix:
                            "check permissions and free space of \(path) (pier runs as root and needs read-write access)"
                    ))
            }
        } else {
            let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            let usable = FileList.isReadWrite(parent.isEmpty ? "/" : parent) || !FileList.exists(parent)
            findings.append(
                Finding(
                    check: "store.file", severity: usable ? .ok : .error, subject: path,
                    message: usable
                        ? "file store not created yet (it is created on first use by overlay networks or cluster IPAM)"
                        : "file store cannot be created: \(parent) is not writable",
                    fix: usable ? nil : "make \(parent) writable for root, or point the store elsewhere"))
        }
        return findings
    }

    /// Every store the networks name, besides the default file store.
    static func stores(default path: String, networks: [NetworkConfigList.Summary]) -> [Finding] {
        var paths = [path]
        for network in networks where network.storeType == "file" {
            if let other = network.storePath, !paths.contains(other) { paths.append(other) }
        }
        var findings = paths.flatMap { store(at: $0) }
        // One check per distinct endpoint list and credentials: a network's agents and plugins
        // use exactly these.
        var checked: [([String], EtcdSecurity)] = []
        for network in networks where network.storeType == "etcd" {
            let endpoints = network.storeEndpoints
            guard !checked.contains(where: { $0 == (endpoints, network.storeSecurity) }) else { continue }
            checked.append((endpoints, network.storeSecurity))
            findings.append(etcdHealth(endpoints: endpoints, security: network.storeSecurity, network: network.name))
        }
        return findings
    }

    /// Asks etcd itself (a range read through its HTTP API, with the network's TLS files and
    /// user) whether it answers.
    static func etcdHealth(endpoints: [String], security: EtcdSecurity = EtcdSecurity(), network: String) -> Finding {
        let subject = endpoints.joined(separator: ",")
        do {
            try EtcdClusterStore(endpoints: endpoints, security: security).checkHealth()
            return Finding(
                check: "store.etcd", severity: .ok, subject: subject, message: "etcd answers (network \(network))")
        } catch  where error.kind == .invalidArgument {
            return Finding(
                check: "store.etcd", severity: .error, subject: subject,
                message: "etcd store of network \(network) is misconfigured: \(error)",
                fix:
                    "fix the store's endpoints, TLS files or credentials; ADDs on \(network) fail with code 7 meanwhile"
            )
        } catch {
            return Finding(
                check: "store.etcd", severity: .error, subject: subject,
                message: "etcd is unreachable for network \(network): \(error)",
                fix: "start etcd or fix the network's store endpoints; ADDs on \(network) fail with code 11 meanwhile")
        }
    }
}
