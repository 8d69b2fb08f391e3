#!/usr/bin/env python3
"""Name-service query latency: Pier's `pier-dns` (started by the `names` plugin) beside
Podman's aardvark-dns, same records, same client, interleaved in rounds.

A host namespace with a bridge (gateway 10.203.0.1/24) and a container namespace behind a veth
(10.203.0.2); one server at a time on the gateway, port 53. The client, inside the container,
sends N sequential UDP queries for a registered name and times each round trip. Usage:

    bench/dns.py [--queries 1000] [--rounds 5] [--bin DIR]

DIR holds `pier-cni` (default: a release build from scripts/build-release).
"""
import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

AARDVARK = "/usr/lib/podman/aardvark-dns"
GATEWAY, CONTAINER_IP, NETWORK = "10.203.0.1", "10.203.0.2", "benchnet"

CLIENT = r"""
import json, random, socket, struct, sys, time
server, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
q_name = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((server, 53))
samples, failures = [], 0
for i in range(count + 50):
    qid = random.randint(0, 65535)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q_name + struct.pack(">HH", 1, 1)
    start = time.perf_counter_ns()
    s.send(q)
    try:
        m = s.recv(4096)
    except socket.timeout:
        failures += 1
        continue
    elapsed = time.perf_counter_ns() - start
    ok = struct.unpack(">H", m[:2])[0] == qid and struct.unpack(">H", m[6:8])[0] >= 1
    if not ok:
        failures += 1
    elif i >= 50:  # the first 50 warm caches and the ARP entry
        samples.append(elapsed)
print(json.dumps({"samples": samples, "failures": failures}))
"""


def sh(*argv):
    subprocess.run(list(argv), check=True)


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] / 1000.0


def query(container, name, count):
    out = subprocess.run(["ip", "netns", "exec", container, "python3", "-c", CLIENT, GATEWAY, name, str(count)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def start_pier(bin_dir, host, container, records):
    names = os.path.join(bin_dir, "names")
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": f"/run/netns/{container}"}],
            "ips": [{"address": f"{CONTAINER_IP}/24", "gateway": GATEWAY, "interface": 0}]}
    config = {"cniVersion": "1.1.0", "name": NETWORK, "type": "names", "dataDir": records, "internal": True,
              "prevResult": prev, "runtimeConfig": {"name": "target", "aliases": {NETWORK: ["alias1"]}}}
    env = {"CNI_CONTAINERID": "bench1", "CNI_NETNS": f"/run/netns/{container}", "CNI_IFNAME": "eth0",
           "CNI_PATH": bin_dir}
    elapsed, _, code, out, err = benchlib.run_plugin(names, "ADD", json.dumps(config), env, netns_name=host)
    if code != 0:
        raise SystemExit(f"names ADD failed: {out}{err}")
    return lambda: benchlib.run_plugin(names, "DEL", json.dumps(config), env, netns_name=host), elapsed


def start_aardvark(host, config_dir):
    # aardvark-dns 1.4: one file per network, first line the listen (gateway) addresses, then
    # "<container id> <ipv4s> <ipv6s> <names>"; `run` daemonises once it listens.
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, NETWORK), "w") as f:
        f.write(f"{GATEWAY}\nbench1 {CONTAINER_IP}  target,alias1\n")
    subprocess.run(["ip", "netns", "exec", host, AARDVARK, "--config", config_dir, "-p", "53", "run"],
                   check=True, capture_output=True, timeout=10)

    def stop():
        with open(os.path.join(config_dir, "aardvark.pid")) as f:
            os.kill(int(f.read().strip()), 9)
    return stop


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bin")
    args = parser.parse_args()
    benchlib.require_root()
    bin_dir = args.bin or benchlib.build_release()
    link_dir = benchlib.temporary_directory("pier-b-dnsbin-")
    os.link(os.path.join(bin_dir, "pier-cni"), os.path.join(link_dir, "names"))
    records = benchlib.temporary_directory("pier-b-dns-")
    aardvark_dir = benchlib.temporary_directory("pier-b-aardvark-")
    kinds = ["pier-dns"] + (["aardvark-dns"] if os.path.exists(AARDVARK) else [])
    samples = {kind: [] for kind in kinds}
    failures = {kind: 0 for kind in kinds}
    start_ms = []
    with benchlib.Netns("pier-b-dnsh") as host, benchlib.Netns("pier-b-dnsc") as container:
        sh("ip", "-n", host.name, "link", "add", "pbdns0", "type", "bridge")
        sh("ip", "-n", host.name, "addr", "add", f"{GATEWAY}/24", "dev", "pbdns0")
        sh("ip", "-n", host.name, "link", "set", "pbdns0", "up")
        sh("ip", "-n", host.name, "link", "add", "pbdnsv", "type", "veth", "peer", "name", "eth0",
           "netns", container.name)
        sh("ip", "-n", host.name, "link", "set", "pbdnsv", "master", "pbdns0", "up")
        sh("ip", "-n", container.name, "addr", "add", f"{CONTAINER_IP}/24", "dev", "eth0")
        sh("ip", "-n", container.name, "link", "set", "eth0", "up")
        for _ in range(args.rounds):
            for kind in kinds:
                if kind == "pier-dns":
                    stop, elapsed = start_pier(link_dir, host.name, container.name, records)
                    start_ms.append(elapsed * 1000)
                else:
                    stop = start_aardvark(host.name, aardvark_dir)
                try:
                    result = query(container.name, "alias1", args.queries)
                    samples[kind] += result["samples"]
                    failures[kind] += result["failures"]
                finally:
                    stop()
                    time.sleep(0.3)
    rows = []
    for kind in kinds:
        s = samples[kind]
        rows.append([kind, str(len(s)), f"{percentile(s, 0.5):.0f}", f"{percentile(s, 0.99):.0f}",
                     f"{percentile(s, 0.999):.0f}", str(failures[kind])])
    print(benchlib.table(["server", "queries", "p50 µs", "p99 µs", "p99.9 µs", "failures"], rows))
    if start_ms:
        print(f"\nnames ADD that starts pier-dns (spawn, daemonise, bind, first reload): "
              f"median {sorted(start_ms)[len(start_ms) // 2]:.1f} ms over {len(start_ms)}")


if __name__ == "__main__":
    main()
