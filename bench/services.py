#!/usr/bin/env python3
"""Service updates in `inet pier` at several numbers of services on one host: the time
`ServiceRules.publish` takes to add one service (a VIP port with 3 members) and to add a
member to it, and `remove`, with 10, 1,000 and 10,000 services already present (3 members
each), plus the map elements and chains each service costs, and the TCP connect latency to a VIP at
each level. Elements only, through the
PierTables API (`Tests/FirewallTests/ServiceBenchTests.swift`, run by `swift test` in a fresh
test host that it deletes again); no traffic. The debug build of the tests is what runs: the
time is the kernel's commit and Pier's few reads, not Swift code.

Usage: bench/services.py [--levels 10,1000,10000] [--samples 20] [--whole-vip]   (as root, after
`swift build --build-tests`; writes bench/results/services.md, with --whole-vip
bench/results/services-whole-vip.md: services as `pier run --service` makes them, every port of
the VIP in `service_vips_v4`)
"""
import argparse
import json
import statistics
import os
import subprocess
import sys

import benchlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(levels, samples, test, variable, tag, whole_vip=False):
    env = dict(os.environ, PIER_SERVICE_BENCH_SAMPLES=str(samples))
    if whole_vip:
        env["PIER_SERVICE_BENCH_WHOLE_VIP"] = "1"
    env[variable] = ",".join(str(n) for n in levels)
    result = subprocess.run(
        ["swift", "test", "--skip-build", "--filter", f"ServiceBenchTests/{test}"], cwd=ROOT, env=env,
        capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith(tag + " ")]
    if result.returncode != 0 or len(lines) != len(levels):
        sys.exit(f"the benchmark test failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    return [json.loads(line.split(" ", 1)[1]) for line in lines]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="10,1000,10000")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--whole-vip", action="store_true")
    args = parser.parse_args()
    benchlib.require_root()
    levels = [int(n) for n in args.levels.split(",")]
    results = run(levels, args.samples, "addOneServiceAndOneMember", "PIER_SERVICE_BENCH", "SERVICEBENCH",
                  args.whole_vip)
    connects = run(levels, args.samples, "connectLatencyToAVIP", "PIER_SERVICE_CONNECT_BENCH", "SERVICECONNECT",
                   args.whole_vip)
    shape = ("every port of the VIP (`pier run --service`): 60 slot elements in `service_vips_v4`"
             if args.whole_vip else "one TCP port: 60 slot elements in `service_slots_v4`")
    rows = []
    for level in results:
        cells = [f"{level['services']:,}"]
        for key in ("add_service_ms", "add_member_ms", "remove_service_ms"):
            summary = benchlib.summarize([ms / 1000 for ms in level[key]])
            cells.append(f"{summary['median_ms']:.1f} / {summary['p90_ms']:.1f}")
        cells.append(f"{level['slot_elements_per_service']:g}")
        cells.append(f"{level['chains_in_table']}")
        rows.append(cells)
    headers = ["services", "add service ms (median / p90)", "add member ms", "remove service ms",
               "slot elements / service", "chains in the table"]
    connect_rows = []
    for level in connects:
        samples = sorted(level["connect_us"][10:])  # the first connects warm ARP and caches
        connect_rows.append([f"{level['services']:,}", f"{statistics.median(samples):.0f}",
                             f"{samples[int(len(samples) * 0.9) - 1]:.0f}", f"{samples[int(len(samples) * 0.99) - 1]:.0f}",
                             len(samples)])
    text = ("# Service updates at 10 to 10,000 services (one host)\n\n"
            f"`bench/services.py --levels {args.levels} --samples {args.samples}"
            f"{' --whole-vip' if args.whole_vip else ''}`; each service: 3 members, {shape} plus 3 hairpin "
            "elements (shared by a member's services); no rule and no chain per service.\n\n" + benchlib.table(headers, rows) + "\n"
            "\n## Connect latency to a VIP\n\nTCP `connect()` from a client namespace through a router namespace "
            "holding that many services to a VIP with 3 members (one Python process, 1,000 connects, the "
            "first 10 dropped), in µs:\n\n"
            + benchlib.table(["services", "median", "p90", "p99", "n"], connect_rows) + "\n")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    name = "services-whole-vip.md" if args.whole_vip else "services.md"
    with open(os.path.join(ROOT, "bench", "results", name), "w") as out:
        out.write(text)
    print(text)


if __name__ == "__main__":
    main()
