#!/usr/bin/env python3
"""ADD and DEL latency of Pier's `ipam` beside the reference `host-local`, on the same config
and lease layout, with 1 and 1000 leases already held, in one run (interleaved).

Usage: bench/ipam.py [--levels 1,1000] [--samples 50]   (as root; writes bench/results/ipam.md)
"""
import argparse
import json
import os
import statistics
import tempfile

import benchlib


def config(name, data_dir, subnet):
    return json.dumps({
        "cniVersion": "1.0.0", "name": name,
        "ipam": {"type": "x", "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]},
    })


NETNS = "/proc/1/ns/net"


def run(path, command, conf, cid):
    env = {"CNI_CONTAINERID": cid, "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent"}
    elapsed, _, status, out, err = benchlib.run_plugin(path, command, conf, env)
    if status != 0:
        raise RuntimeError(f"{path} {command} failed: {out} {err}")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,1000")
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    bin_dir = benchlib.build_release()
    pier_dir = benchlib.install_stripped(bin_dir, ["ipam"])
    plugins = {"pier": os.path.join(pier_dir, "ipam"), "ref": os.path.join(benchlib.REFERENCE_DIR, "host-local")}
    data_dir = benchlib.temporary_directory("pier-bench-ipam-")
    # IPAM never enters the netns, but plugins refuse their own netns: name another one.
    container = benchlib.Netns("pier-b-ipam").__enter__()
    global NETNS
    NETNS = container.path
    confs = {k: config(f"bench-{k}", data_dir, "10.152.0.0/16" if k == "pier" else "10.153.0.0/16") for k in plugins}
    held = {k: 0 for k in plugins}
    rows = []
    for level in levels:
        for kind, path in plugins.items():
            while held[kind] < level - 1:
                run(path, "ADD", confs[kind], f"bg-{held[kind]}")
                held[kind] += 1
        samples = {k: {"add": [], "del": []} for k in plugins}
        for i in range(args.samples):
            for kind, path in plugins.items():
                cid = f"m-{level}-{i}"
                samples[kind]["add"].append(run(path, "ADD", confs[kind], cid))
                samples[kind]["del"].append(run(path, "DEL", confs[kind], cid))
        med = {k: {v: statistics.median(samples[k][v]) * 1000 for v in ("add", "del")} for k in plugins}
        rows.append([
            level,
            f"{med['pier']['add']:.2f}", f"{med['ref']['add']:.2f}", f"{med['pier']['add'] / med['ref']['add']:.2f}×",
            f"{med['pier']['del']:.2f}", f"{med['ref']['del']:.2f}", f"{med['pier']['del'] / med['ref']['del']:.2f}×",
        ])
        print(rows[-1], flush=True)
    container.__exit__(None, None, None)
    benchlib.shutil.rmtree(data_dir, ignore_errors=True)
    report = "# ipam: ADD and DEL latency beside host-local\n\n"
    report += (f"Same config (one /16 range), same lease layout, plugins exec'd directly; median of {args.samples} "
               "ADD+DEL pairs per level; N = leases held including the measured one. Stripped static release builds. "
               "Neither fsyncs a lease.\n\n")
    report += benchlib.table(["N", "pier ADD ms", "ref ADD ms", "ADD ratio", "pier DEL ms", "ref DEL ms", "DEL ratio"], rows)
    print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "ipam.md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
