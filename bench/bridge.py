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


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,100,500")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    bin_dir = benchlib.build_release()
    pier_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam"])
    data_dir = benchlib.tempfile.mkdtemp(prefix="pier-bench-leases-")
    suites = {}
    with benchlib.Netns("pier-b-host") as host_pier, benchlib.Netns("pier-b-host") as host_ref:
        suites["pier"] = benchlib.Chain(
            conflist("pier", "bench-pier", "pierb0", "10.150.0.0/16", data_dir), pier_path, host_pier.name)
        suites["ref"] = benchlib.Chain(
            conflist("ref", "bench-ref", "refb0", "10.151.0.0/16", data_dir), benchlib.REFERENCE_DIR, host_ref.name)
        background = {"pier": [], "ref": []}
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
                samples = {k: {"add": [], "del": []} for k in suites}
                for i in range(args.samples):
                    for kind, chain in suites.items():
                        with benchlib.Netns(f"pier-b-{kind}") as ns:
                            cid = f"m-{ns.name}"
                            add_s, result = chain.add(cid, ns.path)
                            del_s = chain.delete(cid, ns.path, result)
                            samples[kind]["add"].append(add_s)
                            samples[kind]["del"].append(del_s)
                med = {k: {v: statistics.median(samples[k][v]) * 1000 for v in ("add", "del")} for k in suites}
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
            for kind, chain in suites.items():
                for ns, cid, result in background[kind]:
                    try:
                        chain.delete(cid, ns.path, result)
                    finally:
                        ns.__exit__(None, None, None)
    report = "# bridge + IPAM: ADD and DEL latency beside the reference\n\n"
    report += ("Pier `bridge`+`ipam` vs reference `bridge`+`host-local` (Debian containernetworking-plugins), "
               "same config (isGateway, isDefaultGateway, ipMasq, /16), each plugin exec'd inside its test host "
               "(the benchmark enters the host's network namespace itself, as a runtime living there would, so no "
               f"wrapper process is timed); median of {args.samples} ADD+DEL pairs per level, "
               "N = containers on the bridge including the measured one. Stripped static release builds.\n\n")
    report += benchlib.table(
        ["N", "pier ADD ms", "ref ADD ms", "ADD ratio", "pier DEL ms", "ref DEL ms", "DEL ratio"], rows)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        report += (f"\n\nGrowth, N={last[0]} ÷ N={first[0]}: Pier ADD {float(last[1]) / float(first[1]):.2f}, "
                   f"DEL {float(last[4]) / float(first[4]):.2f}; reference ADD {float(last[2]) / float(first[2]):.2f}, "
                   f"DEL {float(last[5]) / float(first[5]):.2f}.")
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
