#!/usr/bin/env python3
"""ADD and DEL latency of Pier's whole bridge+ipam+portmap chain beside the reference
bridge+host-local+portmap (Debian containernetworking-plugins; its portmap uses iptables), one
published TCP port per container, at several numbers of containers already publishing a port.
Both suites are driven the same way (libcni-style chain runner, plugins exec'd inside a test
host namespace), interleaved in one run so machine noise hits both alike.

Usage: bench/portmap.py [--levels 1,100,500,1000] [--samples 10]   (as root; writes
bench/results/portmap.md). Background containers are not DELeted one by one at the end: their
host namespaces are deleted, which removes bridges, rules and maps with them.
"""
import argparse
import os
import statistics

import benchlib
from bridge import KernelFloor


def conflist(kind, name, bridge, subnet, data_dir):
    ipam = "ipam" if kind == "pier" else "host-local"
    return {
        "cniVersion": "1.0.0", "name": name,
        "plugins": [
            {
                "type": "bridge", "bridge": bridge, "isGateway": True, "isDefaultGateway": True, "ipMasq": False,
                "ipam": {"type": ipam, "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


class PortFloor(KernelFloor):
    """The bridge floor (veth, address, route by `ip -batch`) plus what publishing one port
    costs the kernel at least: one `nft -f` adding a DNAT map element to a table made once,
    and one deleting it. No plugin logic; how it grows with N is the kernel's share."""

    def __init__(self, bridge, subnet_prefix, host_netns):
        super().__init__(bridge, subnet_prefix, host_netns)
        self.nft = benchlib.shutil.which("nft")
        self._nft("table ip pfloor {\n"
                  "  map ports { type inet_service : ipv4_addr . inet_service; }\n"
                  "  chain pre { type nat hook prerouting priority dstnat; "
                  "dnat to tcp dport map @ports; }\n}\n")

    def _nft(self, script):
        elapsed, _, status, _, err = benchlib.run_plugin(
            self.nft, "ADD", script, netns_name=self.host_netns, argv_tail=["-f", "-"])
        if status != 0:
            raise RuntimeError(f"nft -f failed: {err}")
        return elapsed

    def add(self, container_id, netns, runtime_config=None):
        host_port = runtime_config["portMappings"][0]["hostPort"]
        elapsed, host_end = super().add(container_id, netns)
        address = self.container_address()
        elapsed += self._nft(f"add element ip pfloor ports {{ {host_port} : {address} . 80 }}\n")
        return elapsed, (host_end, host_port)

    def delete(self, container_id, netns, state, runtime_config=None):
        host_end, host_port = state
        elapsed = self._nft(f"delete element ip pfloor ports {{ {host_port} }}\n")
        return elapsed + super().delete(container_id, netns, host_end)


def mapping(host_port):
    return {"portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]}


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,100,500,1000")
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    bin_dir = benchlib.build_release()
    pier_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam", "portmap"])
    data_dir = benchlib.temporary_directory("pier-bench-leases-")
    suites = {}
    background = {"pier": [], "ref": []}
    rows = []
    per_level = {}
    with benchlib.Netns("pier-b-host") as host_pier, benchlib.Netns("pier-b-host") as host_ref:
        suites["pier"] = benchlib.Chain(
            conflist("pier", "bench-pm-pier", "pierp0", "10.152.0.0/16", data_dir), pier_path, host_pier.name)
        suites["ref"] = benchlib.Chain(
            conflist("ref", "bench-pm-ref", "refp0", "10.153.0.0/16", data_dir), benchlib.REFERENCE_DIR,
            host_ref.name)
        floor_host = benchlib.Netns("pier-b-host").__enter__()
        background["floor"] = []
        try:
            floor = PortFloor("pfloor0", "10.155", floor_host.name)
            for level in levels:
                # Fill up to `level` containers with a published port each (the measured one is extra).
                for kind, chain in suites.items():
                    while len(background[kind]) < level - 1:
                        ns = benchlib.Netns(f"pier-b-{kind}").__enter__()
                        background[kind].append(ns)
                        port = 20000 + len(background[kind])
                        chain.add(f"bg-{ns.name}", ns.path, runtime_config=mapping(port))
                while len(background["floor"]) < level - 1:
                    ns = benchlib.Netns("pier-b-floor").__enter__()
                    background["floor"].append(ns)
                    floor.add(ns.name, ns.path, runtime_config=mapping(20000 + len(background["floor"])))
                samples = benchlib.measure_level(
                    dict(suites, floor=floor), args.samples, runtime_config=lambda i: mapping(40000 + i))
                med = {k: {v: statistics.median(samples[k][v]) * 1000 for v in ("add", "del")} for k in samples}
                per_level[level] = med
                rows.append([
                    level,
                    f"{med['pier']['add']:.1f}", f"{med['ref']['add']:.1f}",
                    f"{med['pier']['add'] / med['ref']['add']:.2f}×",
                    f"{med['pier']['del']:.1f}", f"{med['ref']['del']:.1f}",
                    f"{med['pier']['del'] / med['ref']['del']:.2f}×",
                ])
                print(rows[-1], flush=True)
                write_report(args, levels, rows, per_level, partial=level != levels[-1])
        finally:
            for kind in background:
                for ns in background[kind]:
                    ns.__exit__(None, None, None)
            floor_host.__exit__(None, None, None)
    benchlib.shutil.rmtree(data_dir, ignore_errors=True)

    write_report(args, levels, rows, per_level)


def write_report(args, levels, rows, per_level, partial=False):
    report = "# bridge + IPAM + portmap: ADD and DEL latency beside the reference\n\n"
    report += (
        "Whole chain, one published TCP port per container: Pier `bridge`+`ipam`+`portmap` (nftables DNAT "
        "map elements over netlink) vs reference `bridge`+`host-local`+`portmap` (Debian "
        "containernetworking-plugins; default iptables backend). Same config (isGateway, isDefaultGateway, "
        "/16, snat), each plugin exec'd inside its test host (the benchmark enters the host's network "
        "namespace itself, as a runtime living there would, so no wrapper process is timed); "
        f"median of {args.samples} ADD+DEL pairs per level, N = containers with a published port "
        "including the measured one. Each sample's container namespace is made before its level and deleted after it, so no sample waits for the kernel's teardown of another's. Stripped release builds from `scripts/build-release`.\n\n")
    report += benchlib.table(
        ["N", "pier ADD ms", "ref ADD ms", "ADD ratio", "pier DEL ms", "ref DEL ms", "DEL ratio"], rows)
    done = [lv for lv in levels if lv in per_level]
    first, last = done[0], done[-1]
    if first in per_level and last in per_level and first != last:
        p, r = per_level, per_level
        report += (
            f"\n\nScaling, N={last} ÷ N={first}: Pier ADD {p[last]['pier']['add'] / p[first]['pier']['add']:.2f}, "
            f"DEL {p[last]['pier']['del'] / p[first]['pier']['del']:.2f}; reference ADD "
            f"{r[last]['ref']['add'] / r[first]['ref']['add']:.2f}, DEL {r[last]['ref']['del'] / r[first]['ref']['del']:.2f}.\n")
    floor_rows = [[lv, f"{per_level[lv]['floor']['add']:.1f}", f"{per_level[lv]['floor']['del']:.1f}"]
                  for lv in done if "floor" in per_level[lv]]
    if floor_rows:
        report += (
            "\nThe kernel work alone, for comparison: veth with its peer born in the container, enslaved, up; "
            "address, link up, default route (`ip -batch` in the host and in the container), and one DNAT map "
            "element added by `nft -f` to a table made once; DEL deletes the element (`nft -f`) and the veth. "
            "Same driver, same N:\n\n")
        report += benchlib.table(["N", "kernel ADD ms", "kernel DEL ms"], floor_rows)
        if len(floor_rows) > 1:
            f0, f1 = per_level[first]["floor"], per_level[last]["floor"]
            report += (f"\n\nKernel growth, N={last} ÷ N={first}: ADD {f1['add'] / f0['add']:.2f}, "
                       f"DEL {f1['del'] / f0['del']:.2f}.\n")
    if partial:
        report += "\n(partial: the run stopped before every level was measured)\n"
    else:
        print(report)
    os.makedirs(os.path.join(benchlib.ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "portmap.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
