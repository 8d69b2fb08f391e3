#!/usr/bin/env python3
"""Where the CPU time of `pier run -d` goes: `perf record -g` of whole runs (the `pier` process, the
plugins it forks and the container process it forks, until the command's exec), every sample put in
the first phase, in the order below, whose function is on its stack. A sample is 1/FREQ s of CPU, so
the counts are CPU milliseconds per run; the phases run one after the other except the container
process, which enters its namespaces while `pier` records it as started.

The setup is bench/e2e.py's: a static busybox httpd, one published port, a bridge network with Pier's
plugins, inside a test host namespace this script creates and removes. The wall time of the same runs
without perf is printed beside.

Usage: bench/profile_run.py [--samples 15]   (as root, with perf; writes bench/results/profile-run.md)
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import time

import benchlib
from e2e import HOST_ADDRESS, SERVER, make_rootfs, wait_answer
from portmap import conflist

FREQ = 10000

# (phase, any of these function-name fragments on the stack), first match wins.
PHASES = [
    ("container process: enter namespaces and mounts, exec", ["ContainerInit", "becomeContainerProcess"]),
    ("plugins: bridge + ipam, portmap (forked, in-process)", ["runForked", "PluginRunner"]),
    ("argument parsing (ArgumentParser)", ["parseAsRoot", "parsedAlone", "extractLeading", "endOptionsAtCommand"]),
    ("records: JSON encode, write, sync, listing", ["StateStore", "saveProcess"]),
    ("network namespace + loopback", ["NetworkNamespace", "bringLoopbackUp"]),
    ("start: container files, fork", ["ContainerManagerC5start", "writeContainerFiles", "startInit"]),
    ("create: configs, plugin lookup, checks", ["ContainerManagerC6create", "ContainerManagerC3run"]),
    ("rest of main", ["__libc_start_call_main"]),
]
START_EXIT = "process start and exit: exec, loader, runtime set-up, teardown"


def stacks(perf_data):
    """(comm, [frames, innermost first]) for every sample."""
    text = subprocess.run(["perf", "script", "-i", perf_data], capture_output=True, text=True).stdout
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if len(lines) > 1:
            yield lines[0].split()[0], lines[1:]


def classify(comm, frames):
    if comm != "pier":
        return "the command itself (busybox httpd) until it listens"
    for phase, fragments in PHASES:
        if any(fragment in frame for frame in frames for fragment in fragments):
            return phase
    return START_EXIT


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()

    bin_dir = benchlib.build_release()
    cni_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam", "portmap"])
    rootfs = make_rootfs()
    state = benchlib.temporary_directory("pier-bench-profile-")
    os.makedirs(state + "/conf")
    with open(state + "/conf/bench-profile.conflist", "w") as f:
        json.dump(conflist("pier", "bench-profile", "pierprof0", "10.162.0.0/16",
                           benchlib.temporary_directory("pier-bench-leases-")), f)
    base = [os.path.join(bin_dir, "pier"), "--root", state + "/root", "--cache-dir", state + "/cache",
            "--config-dir", state + "/conf", "--cni-path", cni_path]
    per_phase = collections.defaultdict(list)
    conformance, mount_copy, inode_scan, walls = [], [], [], []
    with benchlib.Netns("pier-b-prof") as host:
        for cmd in (["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                    ["addr", "add", f"{HOST_ADDRESS}/24", "dev", "d0"], ["link", "set", "d0", "up"],
                    ["link", "set", "d1", "up"]):
            subprocess.run(["ip", "-n", host.name] + cmd, check=True)
        for i in range(args.samples):
            run = base + ["run", "-d", "--net", "bench-profile", "-p", f"{41000 + i}:80", "--rootfs", rootfs, "--"]
            # Without perf: the wall time, run to answer.
            start = time.perf_counter()
            with benchlib.in_netns(host.name):
                cid = subprocess.run(run + SERVER, capture_output=True, text=True, check=True).stdout.strip()
            wait_answer(host.name, 41000 + i)
            walls.append((time.perf_counter() - start) * 1000)
            with benchlib.in_netns(host.name):
                subprocess.run(base + ["rm", "-f", cid], capture_output=True, check=True)
            # With perf: where the CPU goes.
            data = os.path.join(state, f"perf-{i}.data")
            with benchlib.in_netns(host.name):
                cid = subprocess.run(["perf", "record", "-q", "-F", str(FREQ), "-g", "-o", data] + run + SERVER,
                                     capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            counts = collections.Counter()
            conformance_samples = mount_samples = inode_samples = 0
            for comm, frames in stacks(data):
                counts[classify(comm, frames)] += 1
                if any("conformsToProtocol" in frame for frame in frames):
                    conformance_samples += 1
                if any("copy_mnt_ns" in frame for frame in frames):
                    mount_samples += 1
                if any("find_inode_bit" in frame for frame in frames):
                    inode_samples += 1
            for phase in [p for p, _ in PHASES] + [START_EXIT, "the command itself (busybox httpd) until it listens"]:
                per_phase[phase].append(counts[phase] * 1000 / FREQ)
            conformance.append(conformance_samples * 1000 / FREQ)
            mount_copy.append(mount_samples * 1000 / FREQ)
            inode_scan.append(inode_samples * 1000 / FREQ)
            with benchlib.in_netns(host.name):
                subprocess.run(base + ["rm", "-f", cid], capture_output=True, check=True)
            os.remove(data)
    write_report(args, per_phase, conformance, mount_copy, inode_scan, walls)


def write_report(args, per_phase, conformance, mount_copy, inode_scan, walls):
    rows = [[phase, f"{statistics.median(values):.2f}"] for phase, values in per_phase.items()]
    total = sum(statistics.median(values) for values in per_phase.values())
    rows.append(["**sum of medians**", f"**{total:.2f}**"])
    lines = [
        "# Where `pier run -d` spends its CPU",
        "",
        f"`bench/profile_run.py --samples {args.samples}`: `perf record -g -F {FREQ}` of whole `pier run -d` "
        "runs (a static busybox httpd, one published port, a bridge network with Pier's plugins, in a test host "
        "namespace), each sample put in the first phase whose function is on its stack. CPU milliseconds per "
        "run, median over the runs; the phases are sequential except the container process, which enters its "
        "namespaces while `pier` saves the record.",
        "",
        benchlib.table(["phase", "CPU ms"], rows),
        "",
        f"- Run to answer without perf (wall time, median): {statistics.median(walls):.1f} ms.",
        f"- Of all the CPU: Swift's protocol-conformance lookups (a linear scan of the binary's ~4,600 "
        f"conformance records, once per type and protocol a process first asks about) "
        f"{statistics.median(conformance):.2f} ms; copying the host's mount table into the container's mount "
        f"namespace (`copy_mnt_ns`, linear in the host's mounts: every network namespace file is one) "
        f"{statistics.median(mount_copy):.2f} ms; choosing an inode for each new file (`find_inode_bit`: an "
        f"ext4 without a journal, as here, skips every inode deleted in the last minutes, one by one, so it "
        f"grows with the files recently removed on the filesystem) {statistics.median(inode_scan):.2f} ms.",
        "- perf itself slows process start-up and forks: the CPU milliseconds add up to more than the wall "
        "time; compare phases with each other, not with the wall time.",
        "",
    ]
    os.makedirs(os.path.join(benchlib.ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(benchlib.ROOT, "bench", "results", "profile-run.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
