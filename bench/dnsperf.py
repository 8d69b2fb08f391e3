#!/usr/bin/env python3
"""Name-service throughput under dnsperf: Pier's `pier-dns` beside Podman's aardvark-dns,
serving the same names, at 10, 100, 1,000 and 10,000 names, in one run.

A host namespace with a bridge (gateway 10.204.0.1/16) and a client namespace behind a veth
(10.204.0.2, itself one of the names, as aardvark-dns answers only containers it knows).
One server at a time listens on the gateway, port 53. dnsperf runs in the client namespace
with 4 clients and 400 queries outstanding (4 x 100), for `--seconds` per server and size,
asking A records of names drawn at random from the set; a "null responder" (Python, answers
every query NXDOMAIN without reading it) shows what the client and the machine sustain at all.
pier-dns is started by a `names` ADD
(the other records written beforehand in its records directory, one file per attachment, as
the plugin writes them); aardvark-dns 1.4 by `run` with one config file for the network.
The servers' CPU share during the run (user + system time over wall time; 100% is one core) and
resident memory (VmRSS, VmHWM) are read from /proc. Usage:

    bench/dnsperf.py [--seconds 10] [--bin DIR]

DIR holds `pier-cni` (default: a release build from scripts/build-release).
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

AARDVARK = "/usr/lib/podman/aardvark-dns"
GATEWAY, CLIENT_IP, NETWORK = "10.204.0.1", "10.204.0.2", "perfnet"
SIZES = [10, 100, 1000, 10000]


def sh(*argv):
    subprocess.run(list(argv), check=True)


def address(i):
    """The i-th container address in the /16 (0 is the client's, 10.204.0.2)."""
    n = i + 2
    return f"10.204.{n // 256}.{n % 256}"


def names_for(count):
    return [("client" if i == 0 else f"c{i}", address(i)) for i in range(count)]


def write_pier_records(records, names):
    """Every attachment but the client's, as the plugin writes them (the client's comes from ADD)."""
    directory = os.path.join(records, NETWORK)
    os.makedirs(directory, exist_ok=True)
    for i, (name, ip) in enumerate(names[1:], start=1):
        record = {"network": NETWORK, "containerID": f"perf{i}", "ifName": "eth0", "names": [name],
                  "addresses": [ip], "gateways": [GATEWAY], "domainName": "dns.pier", "internal": True,
                  "upstreams": [], "containerUpstreams": []}
        with open(os.path.join(directory, f"perf{i}:eth0"), "w") as f:
            json.dump(record, f)


def start_pier(bin_dir, host, client, records):
    names = os.path.join(bin_dir, "names")
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": f"/run/netns/{client}"}],
            "ips": [{"address": f"{CLIENT_IP}/16", "gateway": GATEWAY, "interface": 0}]}
    config = {"cniVersion": "1.1.0", "name": NETWORK, "type": "names", "dataDir": records, "internal": True,
              "prevResult": prev, "runtimeConfig": {"name": "client"}}
    env = {"CNI_CONTAINERID": "perf0", "CNI_NETNS": f"/run/netns/{client}", "CNI_IFNAME": "eth0",
           "CNI_PATH": bin_dir}
    _, _, code, out, err = benchlib.run_plugin(names, "ADD", json.dumps(config), env, netns_name=host)
    if code != 0:
        raise SystemExit(f"names ADD failed: {out}{err}")
    with open(os.path.join(records, ".pier-dns.pid")) as f:
        pid = int(f.read().strip())

    def stop():
        os.kill(pid, 9)
        shutil.rmtree(records, ignore_errors=True)
    return pid, stop


def start_aardvark(host, config_dir, names):
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, NETWORK), "w") as f:
        f.write(f"{GATEWAY}\n")
        for i, (name, ip) in enumerate(names):
            f.write(f"perf{i} {ip}  {name}\n")
    subprocess.run(["ip", "netns", "exec", host, AARDVARK, "--config", config_dir, "-p", "53", "run"],
                   check=True, capture_output=True, timeout=30)
    with open(os.path.join(config_dir, "aardvark.pid")) as f:
        pid = int(f.read().strip())

    def stop():
        os.kill(pid, 9)
        shutil.rmtree(config_dir, ignore_errors=True)
    return pid, stop


def cpu_seconds(pid):
    """User plus system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


NULL_RESPONDER = r"""
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    s.sendto(q[:2] + b"\x81\x83" + q[4:], peer)
"""


def start_null(host):
    """The ceiling: a responder that does no work (NXDOMAIN by flipping two header bytes)."""
    process = subprocess.Popen(["ip", "netns", "exec", host, sys.executable, "-c", NULL_RESPONDER, GATEWAY],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    process.stdout.readline()
    # `ip netns exec` execs the interpreter, so the pid is the responder's.
    pid = process.pid

    def stop():
        os.kill(pid, 9)
        process.wait()
    return pid, stop


def memory_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields


def dnsperf(client, datafile, seconds):
    out = subprocess.run(
        ["ip", "netns", "exec", client, "dnsperf", "-s", GATEWAY, "-d", datafile, "-c", "4", "-q", "400",
         "-l", str(seconds)], check=True, capture_output=True, text=True).stdout
    def number(label):
        match = re.search(label + r":\s+([0-9.]+)", out)
        return float(match.group(1)) if match else float("nan")
    sent = number("Queries sent")
    completed = number("Queries completed")
    lost = number("Queries lost")
    noerror = re.search(r"(?:NOERROR|NXDOMAIN) (\d+)", out)
    return {"qps": number("Queries per second"), "avg_ms": number(r"Average Latency \(s\)") * 1000,
            "sent": sent, "completed": completed, "lost": lost,
            "noerror": int(noerror.group(1)) if noerror else 0, "raw": out}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--bin")
    args = parser.parse_args()
    benchlib.require_root()
    if not shutil.which("dnsperf"):
        sys.exit("dnsperf is not installed (apt-get install dnsperf)")
    bin_dir = args.bin or benchlib.build_release()
    link_dir = benchlib.temporary_directory("pier-b-perfbin-")
    os.link(os.path.join(bin_dir, "pier-cni"), os.path.join(link_dir, "names"))
    kinds = ["pier-dns"] + (["aardvark-dns"] if os.path.exists(AARDVARK) else []) + ["null responder"]
    rows, memory = [], []
    with benchlib.Netns("pier-b-perfh") as host, benchlib.Netns("pier-b-perfc") as client:
        sh("ip", "-n", host.name, "link", "add", "pbperf0", "type", "bridge")
        sh("ip", "-n", host.name, "addr", "add", f"{GATEWAY}/16", "dev", "pbperf0")
        sh("ip", "-n", host.name, "link", "set", "pbperf0", "up")
        sh("ip", "-n", host.name, "link", "add", "pbperfv", "type", "veth", "peer", "name", "eth0",
           "netns", client.name)
        sh("ip", "-n", host.name, "link", "set", "pbperfv", "master", "pbperf0", "up")
        sh("ip", "-n", client.name, "addr", "add", f"{CLIENT_IP}/16", "dev", "eth0")
        sh("ip", "-n", client.name, "link", "set", "eth0", "up")
        # Permanent neighbours both ways: dnsperf opens with 400 queries at once, and while the
        # gateway's address is being resolved the kernel queues only ~200 packets (unres_qlen_bytes)
        # and drops the rest, which dnsperf then counts as lost for whichever server runs.
        def mac(ns, dev):
            return json.loads(subprocess.run(["ip", "-j", "-n", ns, "link", "show", dev], check=True,
                                             capture_output=True, text=True).stdout)[0]["address"]
        sh("ip", "-n", client.name, "neigh", "replace", GATEWAY, "lladdr", mac(host.name, "pbperf0"),
           "dev", "eth0", "nud", "permanent")
        sh("ip", "-n", host.name, "neigh", "replace", CLIENT_IP, "lladdr", mac(client.name, "eth0"),
           "dev", "pbperf0", "nud", "permanent")
        for size in SIZES:
            names = names_for(size)
            datafile = os.path.join(benchlib.temporary_directory("pier-b-perfq-"), "queries")
            with open(datafile, "w") as f:
                for _ in range(20000):
                    f.write(f"{random.choice(names)[0]} A\n")
            for kind in kinds:
                if kind == "pier-dns":
                    records = benchlib.temporary_directory("pier-b-perfdns-")
                    write_pier_records(records, names)
                    pid, stop = start_pier(link_dir, host.name, client.name, records)
                elif kind == "null responder":
                    pid, stop = start_null(host.name)
                else:
                    pid, stop = start_aardvark(host.name, benchlib.temporary_directory("pier-b-perfaa-"), names)
                try:
                    time.sleep(0.3)
                    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
                    result = dnsperf(client.name, datafile, args.seconds)
                    cpu_share = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
                    rss = memory_kib(pid)
                finally:
                    stop()
                    time.sleep(0.5)
                rows.append([kind, f"{size:,}", f"{result['qps']:,.0f}", f"{result['avg_ms']:.2f}",
                             f"{result['completed']:,.0f}", f"{result['lost']:,.0f}",
                             f"{result['noerror']:,}", f"{cpu_share * 100:.0f}%", f"{rss.get('VmRSS', 0):,}",
                             f"{rss.get('VmHWM', 0):,}"])
                print(" ".join(rows[-1]), flush=True)
    print()
    print(benchlib.table(["server", "names", "queries/s", "avg latency ms", "completed", "lost", "answered",
                          "server CPU", "RSS KiB", "peak RSS KiB"], rows))
    with open("/proc/loadavg") as f:
        print(f"\nload average after the run: {f.read().split()[0]} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
