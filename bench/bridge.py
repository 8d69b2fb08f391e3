#!/usr/bin/env python3
"""ADD and DEL latency of Pier's bridge+ipam chain beside the reference bridge+host-local, on
the same config, driven the same way (libcni-style chain runner, plugins exec'd inside a test
host namespace), at several numbers of containers already on the bridge. One run, both suites
interleaved, so machine noise hits both alike.

Usage: bench/bridge.py [--levels 1,100,500] [--samples 20]   (as root; writes bench/results/bridge.md)
"""
import argparse
import os
import statistics

import benchlib


def conflist(kind, name, bridge, subnet, data_dir):
    if kind == "pier":
        plugin, ipam = "bridge", "ipam"
    else:
        plugin, ipam = "bridge", "host-local"
    return {
        "cniVersion": "1.0.0", "name": name,
        "plugins": [{
            "type": plugin, "bridge": bridge, "isGateway": True, "isDefaultGateway": True, "ipMasq": True,
            "ipam": {"type": ipam, "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]},
        }],
    }


class KernelFloor:
    """The same kernel work done by iproute2, no plugin logic: a veth born with its peer in the
    container, enslaved and up; address, link up and default route inside (one `ip -batch` per
    namespace); DEL deletes the veth. What any plugin pays on this kernel, and how that grows
    with N: the floor Pier's numbers are to be read against."""

    def __init__(self, bridge, subnet_prefix, host_netns):
        self.bridge = bridge
        self.prefix = subnet_prefix  # "10.154"
        self.host_netns = host_netns
        self.count = 0
        self.ip = benchlib.shutil.which("ip")
        with benchlib.in_netns(host_netns):
            for command in ([self.ip, "link", "add", bridge, "type", "bridge"],
                            [self.ip, "addr", "add", f"{subnet_prefix}.0.1/16", "dev", bridge],
                            [self.ip, "link", "set", bridge, "up"]):
                benchlib.subprocess.run(command, check=True)

    def container_address(self):
        """The address the latest `add` gave its container (without prefix length)."""
        return f"{self.prefix}.{2 + self.count // 250}.{2 + self.count % 250}"

    def add(self, container_id, netns, runtime_config=None):
        """Returns (seconds, the host end to delete), as `benchlib.Chain.add` returns a result."""
        self.count += 1
        host_end = "kf" + container_id[-8:]
        address = f"{self.container_address()}/16"
        name = os.path.basename(netns)
        host_batch = (f"link add {host_end} type veth peer name eth0 netns {name}\n"
                      f"link set {host_end} master {self.bridge} up\n")
        container_batch = (f"addr add {address} dev eth0\nlink set eth0 up\n"
                           f"route add default via {self.prefix}.0.1\n")
        total = 0.0
        # Each batch runs inside its namespace the way the plugins do (entered by the driver):
        # `ip -n` would also unshare the mount table, a cost that grows with every namespace.
        for netns_name, batch in ((self.host_netns, host_batch), (name, container_batch)):
            elapsed, _, status, out, err = benchlib.run_plugin(
                self.ip, "ADD", batch, netns_name=netns_name, argv_tail=["-batch", "-"])
            if status != 0:
                raise RuntimeError(f"ip -batch failed: {err}")
            total += elapsed
        return total, host_end

    def delete(self, container_id, netns, host_end, runtime_config=None):
        elapsed, _, status, _, err = benchlib.run_plugin(
            self.ip, "DEL", "", netns_name=self.host_netns, argv_tail=["link", "del", host_end])
        if status != 0:
            raise RuntimeError(f"ip link del failed: {err}")
        return elapsed


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,100,500")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    bin_dir = benchlib.build_release()
    pier_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam"])
    data_dir = benchlib.temporary_directory("pier-bench-leases-")
    suites = {}
    with benchlib.Netns("pier-b-host") as host_pier, benchlib.Netns("pier-b-host") as host_ref:
        suites["pier"] = benchlib.Chain(
            conflist("pier", "bench-pier", "pierb0", "10.150.0.0/16", data_dir), pier_path, host_pier.name)
        suites["ref"] = benchlib.Chain(
            conflist("ref", "bench-ref", "refb0", "10.151.0.0/16", data_dir), benchlib.REFERENCE_DIR, host_ref.name)
        floor_host = benchlib.Netns("pier-b-host").__enter__()
        floor = KernelFloor("kfloor0", "10.154", floor_host.name)
        background = {"pier": [], "ref": [], "floor": []}
        floor_rows = []
        rows = []
        try:
            for level in levels:
                # Fill the bridge up to `level` containers (the measured one is extra).
                for kind, chain in suites.items():
                    while len(background[kind]) < level - 1:
                        ns = benchlib.Netns(f"pier-b-{kind}").__enter__()
                        cid = f"bg-{ns.name}"
                        _, result = chain.add(cid, ns.path)
                        background[kind].append((ns, cid, result))
                while len(background["floor"]) < level - 1:
                    ns = benchlib.Netns("pier-b-floor").__enter__()
                    floor.add(ns.name, ns.path)
                    background["floor"].append(ns)
                samples = benchlib.measure_level(dict(suites, floor=floor), args.samples)
                med = {k: {v: statistics.median(samples[k][v]) * 1000 for v in ("add", "del")} for k in samples}
                floor_rows.append([level, f"{med['floor']['add']:.1f}", f"{med['floor']['del']:.1f}"])
                rows.append([
                    level,
                    f"{med['pier']['add']:.1f}", f"{med['ref']['add']:.1f}", f"{med['pier']['add'] / med['ref']['add']:.2f}×",
                    f"{med['pier']['del']:.1f}", f"{med['ref']['del']:.1f}", f"{med['pier']['del'] / med['ref']['del']:.2f}×",
                ])
                print(rows[-1], flush=True)
            # Peak RSS of the plugin processes, one ADD+DEL each, through spawnrss.
            for kind, chain in suites.items():
                chain.measure_rss = True
                with benchlib.Netns(f"pier-b-{kind}") as ns:
                    _, result = chain.add(f"rss-{ns.name}", ns.path)
                    chain.delete(f"rss-{ns.name}", ns.path, result)
                chain.measure_rss = False
        finally:
            # Deleting a namespace removes its veth with it (and the bridge port); the lease
            # directory is a temporary one.
            for kind in suites:
                for ns, _, _ in background[kind]:
                    ns.__exit__(None, None, None)
            for ns in background["floor"]:
                ns.__exit__(None, None, None)
            floor_host.__exit__(None, None, None)
    report = "# bridge + IPAM: ADD and DEL latency beside the reference\n\n"
    report += ("Pier `bridge`+`ipam` vs reference `bridge`+`host-local` (Debian containernetworking-plugins), "
               "same config (isGateway, isDefaultGateway, ipMasq, /16), each plugin exec'd inside its test host "
               "(the benchmark enters the host's network namespace itself, as a runtime living there would, so no "
               f"wrapper process is timed); median of {args.samples} ADD+DEL pairs per level, "
               "N = containers on the bridge including the measured one. Each sample's container namespace is made before its level and deleted after it, so no sample waits for the kernel's teardown of another's. Stripped release builds from `scripts/build-release`.\n\n")
    report += benchlib.table(
        ["N", "pier ADD ms", "ref ADD ms", "ADD ratio", "pier DEL ms", "ref DEL ms", "DEL ratio"], rows)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        report += (f"\n\nGrowth, N={last[0]} ÷ N={first[0]}: Pier ADD {float(last[1]) / float(first[1]):.2f}, "
                   f"DEL {float(last[4]) / float(first[4]):.2f}; reference ADD {float(last[2]) / float(first[2]):.2f}, "
                   f"DEL {float(last[5]) / float(first[5]):.2f}.")
    if len(floor_rows) > 1:
        report += ("\n\nThe kernel work alone, for comparison (`ip -batch` in the host and in the container: "
                   "veth with its peer born in the container, enslaved, up; address, link up, default route; DEL "
                   "deletes the veth; same driver, same N):\n\n")
        report += benchlib.table(["N", "ip ADD ms", "ip DEL ms"], floor_rows)
        first, last = floor_rows[0], floor_rows[-1]
        report += (f"\n\nKernel growth, N={last[0]} ÷ N={first[0]}: ADD {float(last[1]) / float(first[1]):.2f}, "
                   f"DEL {float(last[2]) / float(first[2]):.2f}.")
    rss = [[kind, command, f"{kib / 1024:.1f}"] for kind, chain in suites.items()
           for (plugin, command), kib in sorted(chain.peak_rss_kib.items())]
    report += "\n\nPeak RSS of each plugin process (MiB; Pier's bridge runs `ipam` in-process, the reference's " \
              "bridge execs host-local as a second process, not counted here):\n\n"
    report += benchlib.table(["chain", "verb", "bridge process MiB"], rss)
    sizes = [["pier bridge (stripped)", f"{os.path.getsize(os.path.join(pier_path, 'bridge')) / 1e6:.1f}"],
             ["pier ipam (stripped)", f"{os.path.getsize(os.path.join(pier_path, 'ipam')) / 1e6:.1f}"],
             ["reference bridge", f"{os.path.getsize(os.path.join(benchlib.REFERENCE_DIR, 'bridge')) / 1e6:.1f}"],
             ["reference host-local", f"{os.path.getsize(os.path.join(benchlib.REFERENCE_DIR, 'host-local')) / 1e6:.1f}"]]
    report += "\n\nBinary sizes (MB):\n\n" + benchlib.table(["binary", "MB"], sizes) + "\n"
    print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "bridge.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
