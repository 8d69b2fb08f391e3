#!/usr/bin/env python3
"""What deleting a container's conntrack entries costs DEL: the whole chain's DEL
(`portmap`, then `bridge`+`ipam`, as libcni runs it) with 0 and 1,000 unrelated entries in the
host's conntrack table, Pier beside the reference chain (which deletes none), interleaved.
Before each DEL (not timed) three entries naming the container are added, as its traffic would
leave them (masqueraded UDP, TCP, and a DNAT'd UDP flow); after it, the entries still naming
the container's address are counted.

With `--baseline DIR` (a CNI_PATH of another Pier build, e.g. the commit before this cleanup,
made with `scripts/build-release`), that build's chain runs too, interleaved: the same chain
without the cleanup, on the same machine at the same moments.

Usage: bench/conntrack.py [--levels 0,1000] [--samples 30] [--baseline DIR]
       (as root; writes bench/results/conntrack.md)
"""
import argparse
import os
import statistics
import subprocess

import benchlib


def conflist(kind, name, bridge, subnet, data_dir):
    ipam = "ipam" if kind == "pier" else "host-local"
    return {
        "cniVersion": "1.0.0", "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "isDefaultGateway": True, "ipMasq": True,
             "ipam": {"type": ipam, "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def conntrack(host_netns, *args):
    with benchlib.in_netns(host_netns):
        return subprocess.run(["conntrack", *args], check=True, capture_output=True, text=True).stdout


def fill(host_netns, count):
    """`count` unrelated UDP entries (10.250.x.y -> 10.251.0.1), one `conntrack -I` each."""
    for i in range(count):
        conntrack(host_netns, "-I", "-s", f"10.250.{i // 250}.{1 + i % 250}", "-d", "10.251.0.1", "-p", "udp",
                  "--sport", "4000", "--dport", "53", "-t", "3600")


def leave_entries(host_netns, address, host_address, port):
    """What a container's traffic leaves: masqueraded UDP and TCP out, a DNAT'd UDP flow in.
    `port` differs per sample: entries the reference leaves behind would clash with the next."""
    conntrack(host_netns, "-I", "-s", address, "-d", "198.51.100.9", "-p", "udp", "--sport", str(port),
              "--dport", "53", "--reply-src", "198.51.100.9", "--reply-dst", host_address,
              "--reply-port-src", "53", "--reply-port-dst", str(port), "-t", "600")
    conntrack(host_netns, "-I", "-s", address, "-d", "198.51.100.9", "-p", "tcp", "--sport", str(port),
              "--dport", "443", "--state", "ESTABLISHED", "-t", "600")
    conntrack(host_netns, "-I", "-s", "198.51.100.7", "-d", host_address, "-p", "udp", "--sport", str(port),
              "--dport", "5353", "--reply-src", address, "--reply-dst", "198.51.100.7",
              "--reply-port-src", "53", "--reply-port-dst", str(port), "-t", "600")


def naming(host_netns, address):
    lines = conntrack(host_netns, "-L", "-f", "ipv4").splitlines()
    return sum(1 for line in lines if f"src={address}" in line.split() or f"dst={address}" in line.split())


class Runner:
    """A chain plus the bookkeeping of one suite: entries are left before each DEL and counted after."""

    def __init__(self, chain, host_netns, host_address):
        self.chain = chain
        self.host_netns = host_netns
        self.host_address = host_address
        self.left_behind = []
        self.samples = 0

    def add(self, container_id, netns, runtime_config=None):
        elapsed, result = self.chain.add(container_id, netns, runtime_config=runtime_config)
        address = result["ips"][0]["address"].split("/")[0]
        self.samples += 1
        leave_entries(self.host_netns, address, self.host_address, 20000 + self.samples)
        return elapsed, (result, address)

    def delete(self, container_id, netns, state, runtime_config=None):
        result, address = state
        elapsed = self.chain.delete(container_id, netns, result, runtime_config=runtime_config)
        self.left_behind.append(naming(self.host_netns, address))
        return elapsed


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="0,1000")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--baseline", help="CNI_PATH of another Pier build, measured beside this one")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    bin_dir = benchlib.build_release()
    pier_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam", "portmap"])
    data_dir = benchlib.temporary_directory("pier-bench-leases-")
    rows = []
    with benchlib.Netns("pier-b-host") as host_pier, benchlib.Netns("pier-b-host") as host_ref, \
            benchlib.Netns("pier-b-host") as host_base:
        hosts = {"pier": host_pier.name, "ref": host_ref.name}
        if args.baseline:
            hosts["base"] = host_base.name
        # An uplink address for each host, the DNAT'd flows' destination.
        for name in hosts.values():
            with benchlib.in_netns(name):
                subprocess.run(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1"], check=True)
                subprocess.run(["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"], check=True)
                subprocess.run(["ip", "link", "set", "up0", "up"], check=True)
        runners = {
            "pier": Runner(benchlib.Chain(conflist("pier", "bench-pier", "pierc0", "10.160.0.0/16", data_dir),
                                          pier_path, host_pier.name), host_pier.name, "192.0.2.1"),
            "ref": Runner(benchlib.Chain(conflist("ref", "bench-ref", "refc0", "10.161.0.0/16", data_dir),
                                         benchlib.REFERENCE_DIR, host_ref.name), host_ref.name, "192.0.2.1"),
        }
        if args.baseline:
            runners["base"] = Runner(
                benchlib.Chain(conflist("pier", "bench-base", "basec0", "10.162.0.0/16", data_dir),
                               args.baseline, host_base.name), host_base.name, "192.0.2.1")
        mapping = {"portMappings": [{"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]}
        filled = 0
        for level in levels:
            for name in hosts.values():
                fill(name, level - filled)
            filled = level
            for runner in runners.values():
                runner.left_behind = []
            samples = benchlib.measure_level(runners, args.samples, runtime_config=lambda i: mapping)
            med = {k: statistics.median(samples[k]["del"]) * 1000 for k in samples}
            row = [level, f"{med['pier']:.2f}"]
            if args.baseline:
                row += [f"{med['base']:.2f}", f"{med['pier'] - med['base']:+.2f}"]
            row += [f"{med['ref']:.2f}", f"{sum(runners['pier'].left_behind)}"]
            if args.baseline:
                row.append(f"{sum(runners['base'].left_behind)}")
            row.append(f"{sum(runners['ref'].left_behind)}")
            rows.append(row)
            print(rows[-1], flush=True)
    report = "# Conntrack cleanup on DEL: latency at 0 and 1,000 entries\n\n"
    report += (
        "Whole-chain DEL (`portmap`, then `bridge` with its IPAM, as libcni runs it, with the cached result as "
        "prevResult) of Pier beside the reference chain (Debian containernetworking-plugins, which deletes no "
        "conntrack entry), each plugin exec'd inside its test host; N = unrelated UDP entries in that host's "
        "conntrack table (made with `conntrack -I`). Before each DEL, untimed, three entries naming the "
        "container are added (masqueraded UDP and TCP out, a DNAT'd UDP flow in); \"left\" counts the entries "
        f"still naming its address after the DELs. Median of {args.samples} DELs per level, interleaved. "
        "Pier deletes by kernel filter (Linux 6.12+): one request per address and tuple end, all in one "
        "datagram, each a walk of the conntrack hash in the kernel, in both `portmap` and `bridge`. Stripped "
        "release builds from `scripts/build-release`.\n\n")
    if args.baseline:
        report += ("\"base\" is the same chain built from the commit before the cleanup (`--baseline`), "
                   "interleaved with the others; \"Δ\" is pier minus base.\n\n")
        headers = ["N", "pier DEL ms", "base DEL ms", "Δ ms", "ref DEL ms", "pier left", "base left", "ref left"]
    else:
        headers = ["N", "pier DEL ms", "ref DEL ms", "pier left", "ref left"]
    report += benchlib.table(headers, rows) + "\n"
    print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "conntrack.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
