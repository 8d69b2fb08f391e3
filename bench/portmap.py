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
        try:
            for level in levels:
                # Fill up to `level` containers with a published port each (the measured one is extra).
                for kind, chain in suites.items():
                    while len(background[kind]) < level - 1:
                        ns = benchlib.Netns(f"pier-b-{kind}").__enter__()
                        background[kind].append(ns)
                        port = 20000 + len(background[kind])
                        chain.add(f"bg-{ns.name}", ns.path, runtime_config=mapping(port))
                samples = {k: {"add": [], "del": []} for k in suites}
                with benchlib.NetnsBatch("pier-b-pier", args.samples) as pier_ns, \
                        benchlib.NetnsBatch("pier-b-ref", args.samples) as ref_ns:
                    sample_ns = {"pier": pier_ns, "ref": ref_ns}
                    for i in range(args.samples):
                        for kind, chain in suites.items():
                            ns = sample_ns[kind][i]
                            cid = f"m-{ns.name}"
                            rc = mapping(40000 + i)
                            add_s, result = chain.add(cid, ns.path, runtime_config=rc)
                            del_s = chain.delete(cid, ns.path, result, runtime_config=rc)
                            samples[kind]["add"].append(add_s)
                            samples[kind]["del"].append(del_s)
                med = {k: {v: statistics.median(samples[k][v]) * 1000 for v in ("add", "del")} for k in suites}
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
            for kind in suites:
                for ns in background[kind]:
                    ns.__exit__(None, None, None)
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
    if partial:
        report += "\n(partial: the run stopped before every level was measured)\n"
    else:
        print(report)
    os.makedirs(os.path.join(benchlib.ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "portmap.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
