import Firewall
import NetNS
import Netlink

/// Checks the kernel features Pier needs by using them in a private throwaway namespace:
/// the only reliable test (a feature may be a module that loads on demand, or compiled out
/// although /proc/config.gz says otherwise), and nothing is left behind: the namespace and
/// everything in it disappear when the last handle closes.
enum KernelProbe {
    static func run() -> [Finding] {
        let namespace: NetworkNamespace
        do { namespace = try NetworkNamespace.createAnonymous() } catch {
            return [
                Finding(
                    check: "kernel.netns", severity: .error, message: "cannot create a network namespace: \(error)",
                    fix: "run pier as root on a kernel with CONFIG_NET_NS")
            ]
        }
        var findings = links(in: namespace)
        findings += firewall(in: namespace)
        return findings
    }

    static func links(in namespace: NetworkNamespace) -> [Finding] {
        let netlink: RouteNetlink
        do { netlink = try RouteNetlink(namespace: namespace) } catch {
            return [
                Finding(
                    check: "kernel.netlink", severity: .error, message: "cannot open rtnetlink: \(error)",
                    fix: "run pier as root (CAP_NET_ADMIN)")
            ]
        }
        var findings: [Finding] = []
        func probe(_ feature: String, module: String, needed: String, _ body: () throws(NetlinkError) -> Void) {
            do {
                try body()
                findings.append(Finding(check: "kernel.\(feature)", severity: .ok, message: "\(feature) links work"))
            } catch {
                findings.append(
                    Finding(
                        check: "kernel.\(feature)", severity: feature == "macvlan" ? .warning : .error,
                        message: "cannot create a \(feature) link (\(error)); \(needed)",
                        fix: "load the module (modprobe \(module)) or use a kernel built with it"))
            }
        }
        probe("bridge", module: "bridge", needed: "the bridge plugin needs it") { () throws(NetlinkError) in
            try netlink.createBridge(name: "probe-br")
        }
        probe("veth", module: "veth", needed: "every container interface is a veth") { () throws(NetlinkError) in
            try netlink.createVeth(VethPair(name: "probe-v0", peerName: "probe-v1"))
        }
        probe("vxlan", module: "vxlan", needed: "vxlan-overlay networks need it") { () throws(NetlinkError) in
            try netlink.createVxlan(VxlanDevice(name: "probe-vx", vni: 4242))
        }
        probe("macvlan", module: "macvlan", needed: "only macvlan networks need it") { () throws(NetlinkError) in
            let parent = try netlink.link(named: "probe-v0")
            try netlink.createMacvlan(name: "probe-mv", parentIndex: parent.index)
        }
        return findings
    }

    static func firewall(in namespace: NetworkNamespace) -> [Finding] {
        let client: NFTablesClient
        do { client = try NFTablesClient(namespace: namespace) } catch {
            return [
                Finding(
                    check: "kernel.nf_tables", severity: .error, message: "cannot open nfnetlink: \(error)",
                    fix: "load nf_tables (modprobe nf_tables)")
            ]
        }
        let table = Table(family: .inet, name: "probe")
        var base = Batch()
        base.add(table)
        let steps: [(String, String, String, Batch)] = [
            (
                "nf_tables", "nf_tables", "Pier's masquerade, isolation and port publishing live in table inet pier",
                base
            ),
            ("nat", "nft_nat nft_masq", "masquerade and published ports need NAT chains", natBatch()),
            ("conntrack", "nf_conntrack nft_ct", "NAT and published ports need connection tracking", ctBatch()),
        ]
        var findings: [Finding] = []
        for (feature, modules, needed, batch) in steps {
            do {
                try client.commit(batch)
                findings.append(Finding(check: "kernel.\(feature)", severity: .ok, message: "\(feature) works"))
            } catch {
                findings.append(
                    Finding(
                        check: "kernel.\(feature)", severity: .error,
                        message: "\(feature) failed (\(error)); \(needed)",
                        fix: "load the modules (modprobe \(modules)) or use a kernel built with them"))
                if feature == "nf_tables" { break }
            }
        }
        findings.append(conntrackNetlink(in: namespace))
        return findings
    }

    /// DEL flushes an attachment's conntrack entries over ctnetlink; without it stale NAT
    /// entries outlive their container.
    static func conntrackNetlink(in namespace: NetworkNamespace) -> Finding {
        do {
            _ = try ConntrackClient(namespace: namespace).entries(family: .v4)
            return Finding(check: "kernel.conntrack_netlink", severity: .ok, message: "ctnetlink works")
        } catch {
            return Finding(
                check: "kernel.conntrack_netlink", severity: .warning,
                message: "cannot list conntrack entries (\(error)); stale NAT entries outlive deleted containers",
                fix: "load nf_conntrack_netlink (modprobe nf_conntrack_netlink)")
        }
    }

    static func natBatch() -> Batch {
        var batch = Batch()
        let chain = Chain(
            family: .inet, table: "probe", name: "nat",
            base: BaseChainSpec(type: .nat, hook: .postrouting, priority: ChainPriority.srcnat))
        batch.add(chain)
        batch.add(Rule(family: .inet, table: "probe", chain: chain.name).masquerade())
        return batch
    }

    static func ctBatch() -> Batch {
        var batch = Batch()
        let chain = Chain(
            family: .inet, table: "probe", name: "filter",
            base: BaseChainSpec(type: .filter, hook: .forward, priority: ChainPriority.filter))
        batch.add(chain)
        batch.add(Rule(family: .inet, table: "probe", chain: chain.name).ctState(.established).verdict(.accept))
        return batch
    }
}
