#!/usr/bin/env python3
"""Many running containers through `pier`: what the next `pier run -d` costs, and what
`pier ps`, `pier inspect` and `pier rm` cost, with 10, 100 and 1,000 containers running,
beside the kernel floor's own growth (the same veth, address, route and DNAT map element done
by `ip -batch` and `nft -f`, with as many attachments present).

Every container publishes one TCP port and runs a static busybox `sleep`. Each level has its own
test host namespace and `pier` state (and the floor its own host namespace), all filled first;
then the samples go round the levels, so load from other work on the machine, which drifts over
the minutes a fill takes, hits every level alike instead of whichever level was being measured.
Growth is a level's median divided by the first level's: Pier's `run -d` should grow no more than
the floor's (+0.05), and `ps`, `inspect`, `rm` should stay within 2x of their cost at the first
level.

Usage: bench/scale.py [--levels 10,100,1000] [--samples 5]   (as root; writes
bench/results/scale.md).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import benchlib
from portmap import PortFloor, conflist, mapping

SLEEPER = ["/bin/busybox", "sleep", "100000"]


class PierRunner:
    """`pier` against a private state, config and cache directory, inside the host namespace."""

    def __init__(self, pier, cni_path, host_netns, state, leases):
        self.host_netns = host_netns
        # The state root on the benchmark's tmpfs, as /run/pier is on a standard host (see
        # benchlib.runtime_state_directory); the result cache and leases on disk.
        self.base = [pier, "--root", benchlib.runtime_state_directory("pier-root-"), "--cache-dir", state + "/cache",
                     "--config-dir", state + "/conf", "--cni-path", cni_path]
        os.makedirs(state + "/conf", exist_ok=True)
        with open(state + "/conf/bench-scale.conflist", "w") as f:
            json.dump(conflist("pier", "bench-scale", "piersc0", "10.171.0.0/16", leases), f)
        self.rootfs = benchlib.temporary_directory("pier-bench-rootfs-")
        os.makedirs(self.rootfs + "/bin")
        subprocess.run(["cp", "/usr/bin/busybox", self.rootfs + "/bin/busybox"], check=True)
        for d in ("proc", "sys", "dev", "etc", "tmp", "run"):
            os.makedirs(f"{self.rootfs}/{d}", exist_ok=True)

    def timed(self, argv):
        start = time.perf_counter()
        with benchlib.in_netns(self.host_netns):
            out = subprocess.run(self.base + argv, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if out.returncode != 0:
            raise RuntimeError(f"pier {' '.join(argv)}: {out.stderr}")
        return elapsed, out.stdout.strip()

    def run(self, port):
        return self.timed(["run", "-d", "--net", "bench-scale", "-p", f"{port}:80", "--rootfs", self.rootfs,
                           "--"] + SLEEPER)


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="10,100,1000")
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    bin_dir = benchlib.build_release()
    cni_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam", "portmap"])
    hosts = []  # every namespace made, for the cleanup
    piers, floors = {}, {}
    background = {level: [] for level in levels}
    floor_background = {level: [] for level in levels}  # (namespace, state)
    samples = {level: {k: [] for k in ("run", "ps", "ps alone", "inspect", "rm", "floor add", "floor del")}
               for level in levels}
    try:
        for level in levels:
            pier_host = benchlib.Netns("pier-b-scale").__enter__()
            floor_host = benchlib.Netns("pier-b-scale").__enter__()
            hosts += [pier_host, floor_host]
            leases = benchlib.temporary_directory("pier-bench-leases-")
            state = benchlib.temporary_directory("pier-bench-scale-")
            piers[level] = PierRunner(os.path.join(bin_dir, "pier"), cni_path, pier_host.name, state, leases)
            floors[level] = PortFloor("floorsc0", "10.172", floor_host.name)
            fill_start = time.perf_counter()
            while len(background[level]) < level - 1:
                background[level].append(piers[level].run(20000 + len(background[level]))[1])
            while len(floor_background[level]) < level - 1:
                ns = benchlib.Netns("pier-b-fl").__enter__()
                count = len(floor_background[level])
                _, floor_state = floors[level].add(f"bg{count:05d}", ns.path, runtime_config=mapping(20000 + count))
                floor_background[level].append((ns, floor_state))
            print(f"level {level}: filled in {time.perf_counter() - fill_start:.1f} s", flush=True)
        # The floor's namespaces are made before the samples and deleted after them (see
        # benchlib.NetnsBatch: a namespace torn down between samples would slow the next one).
        with benchlib.NetnsBatch("pier-b-fm", args.samples * len(levels)) as floor_namespaces:
            for i in range(args.samples):
                for index, level in enumerate(levels):
                    pier, floor, sample = piers[level], floors[level], samples[level]
                    elapsed, cid = pier.run(40000 + i)
                    sample["run"].append(elapsed)
                    sample["ps"].append(pier.timed(["ps"])[0])
                    sample["inspect"].append(pier.timed(["inspect", cid])[0])
                    sample["rm"].append(pier.timed(["rm", "-f", cid])[0])
                    ns = floor_namespaces[i * len(levels) + index]
                    add_s, floor_state = floor.add(f"m{level}-{i}", ns.path, runtime_config=mapping(40000 + i))
                    sample["floor add"].append(add_s)
                    sample["floor del"].append(floor.delete(f"m{level}-{i}", ns.path, floor_state))
        # `ps` above runs right after a start whose detached helpers (ARP announcement, netfilter socket
        # release) may still be at work; `ps alone` is the same command back to back, once things settled,
        # levels taken in turn.
        time.sleep(2)
        for _ in range(3 * args.samples):
            for level in levels:
                samples[level]["ps alone"].append(piers[level].timed(["ps"])[0])
        results = {level: {k: statistics.median(v) * 1000 for k, v in samples[level].items()} for level in levels}
        for level in levels:
            print(level, results[level], flush=True)
        write_report(args, levels, results)
    finally:
        for level, ids in background.items():
            for cid in ids:
                try:
                    piers[level].timed(["rm", "-f", cid])
                except RuntimeError:
                    pass
        for level, attached in floor_background.items():
            for ns, floor_state in attached:
                try:
                    floors[level].delete("bg", ns.path, floor_state)
                except RuntimeError:
                    pass
                ns.__exit__(None, None, None)
        for host in hosts:
            host.__exit__(None, None, None)


def write_report(args, levels, results):
    measured = [level for level in levels if level in results]
    first = results[measured[0]]
    report = "# Many containers through `pier`\n\n"
    report += (
        "One test host namespace and `pier` state per level, all filled before the samples, which go round the "
        "levels (so load drifting over the run hits every level alike); every container publishes one TCP port and "
        "runs busybox `sleep` in its own rootfs; `pier`'s state root is on a tmpfs, as /run is on a standard host, its leases and result cache on disk. N = containers running in the level, the measured one included. `run` is `pier run -d` to its return "
        "(network chain in-process), `ps` lists every container, `inspect` one, `rm` is `rm -f` of the measured "
        "one; `ps alone` is `ps` again, three times as many samples, back to back after all the others, levels "
        "in turn (the `ps` beside `run` follows a start whose detached helpers may still be at work). "
        "The floor is the same kernel work by `ip -batch` and `nft -f` (veth, address, route, one DNAT "
        f"map element) with as many attachments present. Median of {args.samples} samples; growth is relative "
        f"to N={measured[0]}. Targets: `run` growth ≤ floor growth + 0.05; `ps`, `inspect`, `rm` ≤ 2× their "
        "cost at the first level.\n\n")
    headers = ["N", "run ms", "floor add ms", "run growth", "floor growth", "ps ms", "ps growth", "ps alone ms",
               "ps alone growth", "inspect ms", "inspect growth", "rm ms", "rm growth", "floor del ms"]
    rows = []
    for level in measured:
        r = results[level]
        rows.append([
            level, f"{r['run']:.1f}", f"{r['floor add']:.1f}", f"{r['run'] / first['run']:.2f}",
            f"{r['floor add'] / first['floor add']:.2f}", f"{r['ps']:.1f}", f"{r['ps'] / first['ps']:.2f}",
            f"{r['ps alone']:.1f}", f"{r['ps alone'] / first['ps alone']:.2f}",
            f"{r['inspect']:.1f}", f"{r['inspect'] / first['inspect']:.2f}", f"{r['rm']:.1f}",
            f"{r['rm'] / first['rm']:.2f}", f"{r['floor del']:.1f}"])
    report += benchlib.table(headers, rows) + "\n"
    print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "scale.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
