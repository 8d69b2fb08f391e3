#!/usr/bin/env python3
"""ADD and DEL latency of Pier's bridge+ipam chain from two builds side by side: one built from
another tree (`--before`, typically the commit before a change) and this tree's release build.
Same config as bridge.py, one container on the bridge, samples interleaved so machine noise hits
both alike. Written for the detached close of the announcement's packet socket (#20), usable
for any before/after comparison of the bridge ADD path.

Usage: bench/announce.py --before /path/to/other/tree [--samples 40]
       (as root; the other tree gets `scripts/build-release` too; writes bench/results/announce.md)
"""
import argparse
import os
import statistics
import subprocess

import benchlib
from bridge import conflist


def release_of(tree):
    out = subprocess.run([os.path.join(tree, "scripts", "build-release")], cwd=tree, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="source tree of the build to compare against")
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()

    builds = {"before": release_of(os.path.abspath(args.before)), "after": benchlib.build_release()}
    paths = {kind: benchlib.install_stripped(bin_dir, ["bridge", "ipam"]) for kind, bin_dir in builds.items()}
    data_dir = benchlib.temporary_directory("pier-bench-leases-")
    with benchlib.Netns("pier-b-host") as host_before, benchlib.Netns("pier-b-host") as host_after:
        chains = {
            "before": benchlib.Chain(conflist("pier", "bench-before", "pierb0", "10.152.0.0/16", data_dir),
                                     paths["before"], host_before.name),
            "after": benchlib.Chain(conflist("pier", "bench-after", "pierb0", "10.153.0.0/16", data_dir),
                                    paths["after"], host_after.name),
        }
        load_before = os.getloadavg()[0]
        samples = benchlib.measure_level(chains, args.samples)
        load_after = os.getloadavg()[0]
    rows = []
    for kind in chains:
        add = sorted(samples[kind]["add"])
        rows.append([kind, f"{statistics.median(add) * 1000:.1f}", f"{add[0] * 1000:.1f}",
                     f"{add[int(len(add) * 0.9) - 1] * 1000:.1f}",
                     f"{statistics.median(samples[kind]['del']) * 1000:.1f}"])
        print(rows[-1], flush=True)
    report = "# bridge ADD before and after a change\n\n"
    report += (f"Pier `bridge`+`ipam` (same config as bridge.py, N = 1), two stripped release builds side by side, "
               f"samples interleaved; {args.samples} ADD+DEL pairs each; ADD time is spawn to exit (a runtime "
               "waits for the plugin's exit, not only its stdout). Load average (1 min) "
               f"{load_before:.1f} before the run, {load_after:.1f} after, on {os.cpu_count()} CPUs.\n\n")
    report += benchlib.table(["build", "ADD median ms", "ADD min ms", "ADD p90 ms", "DEL median ms"], rows) + "\n"
    print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "announce.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
