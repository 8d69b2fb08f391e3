#!/usr/bin/env python3
"""Shaping accuracy and ADD/DEL latency of Pier's `bandwidth` beside the reference `bandwidth`
(Debian containernetworking-plugins), each chained after its own `bridge` (+`ipam` /
`host-local`), with the limits containerd derives from `kubernetes.io/ingress-bandwidth` and
`egress-bandwidth`: the rate, and a burst of 2^32 - 1 bits, its "unset".

Throughput is measured with iperf3 (TCP, one stream) where the data arrives: the server runs in
the sending namespace and sends (`-R`), the client in the receiving one counts. Ingress is host
to container, egress container to host, between the host namespace's bridge address and the
container's address only. Pier and the reference are measured interleaved in one run.

Usage: bench/bandwidth.py [--rates 10,100] [--seconds 5] [--samples 3] [--latency-samples 30]
(as root; rates in Mbit/s; writes bench/results/bandwidth.md).
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import benchlib

UNSET_BURST = 4294967295


def conflist(kind, name, bridge, subnet, data_dir):
    ipam = "ipam" if kind == "pier" else "host-local"
    return {
        "cniVersion": "1.0.0", "name": name,
        "plugins": [
            {
                "type": "bridge", "bridge": bridge, "isGateway": True,
                "ipam": {"type": ipam, "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]},
            },
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        ],
    }


def limits(rate_bits):
    return {"bandwidth": {"ingressRate": rate_bits, "ingressBurst": UNSET_BURST,
                          "egressRate": rate_bits, "egressBurst": UNSET_BURST}}


def iperf(sender_ns, sender_address, receiver_ns, seconds, port=5201):
    """(average bit/s, first-second bit/s) of one TCP stream, counted by the receiver."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", sender_ns, "iperf3", "-s", "-1", "-B", sender_address, "-p", str(port),
         "--idle-timeout", "30"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            out = subprocess.run(
                ["ip", "netns", "exec", receiver_ns, "iperf3", "-c", sender_address, "-p", str(port), "-R",
                 "-t", str(seconds), "-J"], capture_output=True, text=True, timeout=seconds + 30)
            # iperf3 -J exits 0 even when it could not connect: the reason is in "error".
            if "unable to connect" not in out.stdout:
                break
            time.sleep(0.1)
        report = json.loads(out.stdout) if out.stdout.strip() else {}
        if out.returncode != 0 or not report.get("intervals"):
            raise RuntimeError(f"iperf3 failed ({out.returncode}): {out.stdout[:600]} {out.stderr}")
        first = report["intervals"][0]["sum"]
        return report["end"]["sum_received"]["bits_per_second"], first["bytes"] * 8 / first["seconds"]
    finally:
        server.kill()
        server.wait()


class Attached:
    """One container attached through a chain in its own host namespace, for throughput."""

    def __init__(self, kind, chain, rate_bits):
        self.kind = kind
        self.chain = chain
        self.container = benchlib.Netns(f"pier-b-{kind}").__enter__()
        self.cid = f"bw-{self.container.name}"
        self.runtime = limits(rate_bits)
        _, self.result = chain.add(self.cid, self.container.path, runtime_config=self.runtime)
        ips = [ip["address"].split("/")[0] for ip in self.result["ips"]]
        self.address = next(a for a in ips if ":" not in a)
        self.gateway = self.address.rsplit(".", 1)[0] + ".1"

    def bucket_bytes(self):
        """The ingress TBF's burst as the kernel keeps it (`tc -j`), on the host end of the veth."""
        inside = json.loads(subprocess.run(
            ["ip", "-j", "-n", self.container.name, "link", "show", "dev", "eth0"],
            check=True, capture_output=True, text=True).stdout)[0]
        links = json.loads(subprocess.run(
            ["ip", "-j", "-n", self.chain.host_netns, "link", "show"], check=True, capture_output=True,
            text=True).stdout)
        veth = next(link["ifname"] for link in links if link["ifindex"] == inside["link_index"])
        qdiscs = json.loads(subprocess.run(
            ["ip", "netns", "exec", self.chain.host_netns, "tc", "-j", "qdisc", "show", "dev", veth],
            check=True, capture_output=True, text=True).stdout)
        return next(q["options"]["burst"] for q in qdiscs if q.get("root") and q["kind"] == "tbf")

    def close(self):
        try:
            self.chain.delete(self.cid, self.container.path, self.result, runtime_config=self.runtime)
        finally:
            self.container.__exit__(None, None, None)


def bandwidth_latency(chains, samples, rate_bits):
    """Median ADD and DEL ms of the bandwidth plugin alone (both directions shaped), after each
    chain's interface plugin; samples interleaved across the chains so machine noise hits all."""
    adds = {kind: [] for kind in chains}
    dels = {kind: [] for kind in chains}
    with benchlib.NetnsBatch("pier-b-lat", samples * len(chains)) as namespaces:
        spare = iter(namespaces)
        for _ in range(samples):
            for kind, chain in chains.items():
                ns = next(spare)
                bridge = benchlib.Chain(
                    dict(chain.conflist, plugins=chain.conflist["plugins"][:1]), chain.cni_path, chain.host_netns)
                plugin = chain.conflist["plugins"][1]
                path = os.path.join(chain.cni_path, "bandwidth")
                cid = f"lat-{ns.name}"
                _, previous = bridge.add(cid, ns.path)
                env = {"CNI_CONTAINERID": cid, "CNI_NETNS": ns.path, "CNI_IFNAME": "eth0",
                       "CNI_PATH": chain.cni_path}
                stdin = chain._plugin_stdin(plugin, previous, limits(rate_bits))
                elapsed, _, status, out, err = benchlib.run_plugin(
                    path, "ADD", stdin, env, netns_name=chain.host_netns)
                if status != 0:
                    raise RuntimeError(f"{kind} bandwidth ADD failed: {out} {err}")
                adds[kind].append(elapsed)
                stdin = chain._plugin_stdin(plugin, json.loads(out), limits(rate_bits))
                elapsed, _, status, out, err = benchlib.run_plugin(
                    path, "DEL", stdin, env, netns_name=chain.host_netns)
                if status != 0:
                    raise RuntimeError(f"{kind} bandwidth DEL failed: {out} {err}")
                dels[kind].append(elapsed)
                bridge.delete(cid, ns.path, previous)
    return {kind: (statistics.median(adds[kind]) * 1000, statistics.median(dels[kind]) * 1000) for kind in chains}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="10,100")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=30)
    args = parser.parse_args()
    benchlib.require_root()
    rates = [int(r) * 1_000_000 for r in args.rates.split(",")]

    bin_dir = benchlib.build_release()
    pier_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam", "bandwidth"])
    data_dir = benchlib.temporary_directory("pier-bench-bw-leases-")
    measured = {}  # (kind, rate, direction) -> [(average, first)]
    latency = {}
    buckets = {}  # (kind, rate) -> ingress TBF burst in bytes, as the kernel keeps it
    with benchlib.Netns("pier-b-host") as host_pier, benchlib.Netns("pier-b-host") as host_ref:
        chains = {
            "pier": benchlib.Chain(
                conflist("pier", "bench-bw-pier", "pierbw0", "10.156.0.0/24", data_dir), pier_path, host_pier.name),
            "ref": benchlib.Chain(
                conflist("ref", "bench-bw-ref", "refbw0", "10.157.0.0/24", data_dir), benchlib.REFERENCE_DIR,
                host_ref.name),
        }
        for rate in rates:
            for _ in range(args.samples):
                # A fresh attachment per sample: a new container starts with a full bucket (the
                # reference's refills at the rate, so a reused one would hide most of its burst).
                for kind, chain in chains.items():
                    a = Attached(kind, chain, rate)
                    try:
                        buckets[(kind, rate)] = a.bucket_bytes()
                        ingress = iperf(chain.host_netns, a.gateway, a.container.name, args.seconds)
                        egress = iperf(a.container.name, a.address, chain.host_netns, args.seconds)
                    finally:
                        a.close()
                    measured.setdefault((kind, rate, "ingress"), []).append(ingress)
                    measured.setdefault((kind, rate, "egress"), []).append(egress)
                    print(kind, rate, "ingress", ingress, "egress", egress, flush=True)
        latency = bandwidth_latency(chains, args.latency_samples, rates[0])
    write_report(args, rates, measured, latency, buckets)


def write_report(args, rates, measured, latency, buckets):
    rows = []
    for rate in rates:
        for direction in ("ingress", "egress"):
            row = [f"{rate // 1_000_000} Mbit/s", direction]
            for kind in ("pier", "ref"):
                samples = measured[(kind, rate, direction)]
                average = statistics.median(s[0] for s in samples)
                first = max(s[1] for s in samples)
                row += [f"{average / 1e6:.1f} ({average / rate:.2f}×)", f"{first / 1e6:.1f} ({first / rate:.1f}×)"]
            rows.append(row)
    report = "# bandwidth: shaping accuracy and latency beside the reference\n\n"
    report += (
        "Pier `bandwidth` after Pier `bridge`+`ipam` vs the reference `bandwidth` after the reference "
        "`bridge`+`host-local` (Debian containernetworking-plugins), with containerd's limits for "
        "`kubernetes.io/ingress-bandwidth` / `egress-bandwidth`: the rate, burst 4294967295 bits (its "
        "\"unset\"). One iperf3 TCP stream per measurement, counted by the receiver (ingress: host bridge "
        f"address to container; egress: container to host), {args.seconds} s each, {args.samples} samples "
        "per cell, interleaved, each in a freshly attached container (the ingress and egress buckets are "
        "separate TBFs, so one attachment serves both directions). Average: median of the samples' "
        "whole-run throughput (TCP payload: about 95 % of the shaped Ethernet rate at MTU 1500). First "
        "second: the highest of the samples (what arrived in iperf3's first interval). Stripped release "
        "builds from `scripts/build-release`.\n\n")
    report += benchlib.table(
        ["rate", "direction", "pier average Mbit/s", "pier first second", "ref average Mbit/s",
         "ref first second"], rows)
    report += "\n\nThe bucket each plugin made from the unset burst, as the kernel keeps it (`tc -j qdisc show`):\n\n"
    report += benchlib.table(
        ["rate", "pier burst bytes", "ref burst bytes"],
        [[f"{rate // 1_000_000} Mbit/s", buckets[("pier", rate)], buckets[("ref", rate)]] for rate in rates])
    report += (
        "\n\nThe reference passes the unset burst through: its bucket holds hundreds of megabytes, so "
        "everything a TCP stream can send in the first second leaves at line rate before shaping starts. "
        "Pier treats a burst of 2^32 - 1 bits, or of more than one second at the rate, as unset and uses a "
        "tenth of a second at the rate (at least two full frames).\n")
    if latency:
        report += (
            f"\nLatency of the `bandwidth` plugin alone (both directions shaped at {rates[0] // 1_000_000} Mbit/s, "
            f"after the interface plugin's ADD), median of {args.latency_samples}, interleaved. DEL is mostly "
            "the kernel unregistering the IFB (a network-wide RCU wait), which both plugins do:\n\n")
        report += benchlib.table(
            ["", "pier ms", "ref ms", "ratio"],
            [["ADD", f"{latency['pier'][0]:.1f}", f"{latency['ref'][0]:.1f}",
              f"{latency['pier'][0] / latency['ref'][0]:.2f}×"],
             ["DEL", f"{latency['pier'][1]:.1f}", f"{latency['ref'][1]:.1f}",
              f"{latency['pier'][1] / latency['ref'][1]:.2f}×"]])
        report += "\n"
    print(report)
    os.makedirs(os.path.join(benchlib.ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "bandwidth.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
