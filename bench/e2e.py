#!/usr/bin/env python3
"""End to end: from `run -d` to the container answering on its published port, for `pier`
and for `podman run -d` with its CNI backend (the reference plugins in /usr/lib/cni) and with
netavark, same rootfs (a static busybox serving HTTP), same port, at several numbers of
containers already running. Everything happens inside a test host namespace: the runtimes are
started there, the client connects there to a local address of that host, through the
published port's DNAT.

Usage: bench/e2e.py [--levels 1,100] [--samples 5] [--peers pier,podman-cni,podman-netavark] [--settle 1.0]
(as root; writes bench/results/e2e.md). Samples are interleaved between peers.
"""
import argparse
import os
import socket
import statistics
import subprocess
import time

import benchlib
from portmap import conflist

HOST_ADDRESS = "10.250.0.1"


def make_rootfs():
    root = benchlib.temporary_directory("pier-bench-rootfs-")
    os.makedirs(root + "/bin")
    os.makedirs(root + "/www")
    subprocess.run(["cp", "/usr/bin/busybox", root + "/bin/busybox"], check=True)
    with open(root + "/www/index.html", "w") as f:
        f.write("ok\n")
    for d in ("proc", "sys", "dev", "etc", "tmp", "run"):
        os.makedirs(f"{root}/{d}", exist_ok=True)
    return root


SERVER = ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]


def wait_answer(host_netns, port, deadline_s=30.0):
    """Polls until an HTTP GET on HOST_ADDRESS:port (from inside the host) is answered."""
    end = time.perf_counter() + deadline_s
    with benchlib.in_netns(host_netns):
        while time.perf_counter() < end:
            try:
                with socket.create_connection((HOST_ADDRESS, port), timeout=0.5) as s:
                    s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/"):
                        return True
            except OSError:
                pass
            time.sleep(0.001)
    raise RuntimeError(f"nothing answered on port {port}")


def run_in(host_netns, argv, env=None):
    with benchlib.in_netns(host_netns):
        out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr}")
    return out.stdout.strip()


class Pier:
    def __init__(self, binary, cni_path, state, leases):
        # The state root on the benchmark's tmpfs, as /run/pier is on a standard host; the result cache
        # (as /var/lib/cni) and leases on disk.
        root = benchlib.runtime_state_directory("pier-root-")
        self.base = [binary, "--root", root, "--cache-dir", state + "/cache", "--config-dir",
                     state + "/conf", "--cni-path", cni_path]
        os.makedirs(state + "/conf", exist_ok=True)
        import json
        with open(state + "/conf/bench-e2e.conflist", "w") as f:
            json.dump(conflist("pier", "bench-e2e", "piere2e0", "10.161.0.0/16", leases), f)

    def run(self, host, rootfs, port):
        return run_in(host, self.base + ["run", "-d", "--net", "bench-e2e", "-p", f"{port}:80", "--rootfs", rootfs,
                                         "--"] + SERVER)

    def remove(self, host, cid):
        run_in(host, self.base + ["rm", "-f", cid])


class Podman:
    """Podman with a private containers.conf: runc (crun refuses this machine's hybrid cgroup
    layout), ulimits below the hard limits here, file locks, its own storage and network dirs."""

    def __init__(self, backend, state):
        for d in ("root", "net"):
            os.makedirs(f"{state}/{d}", exist_ok=True)
        # runroot and tmp_dir on the benchmark's tmpfs (as /run/containers and /run/libpod are on a
        # standard host); the image store (graphroot) on disk.
        run = benchlib.runtime_state_directory(f"podman-{backend}-")
        with open(state + "/containers.conf", "w") as f:
            f.write(
                '[containers]\nlog_driver = "k8s-file"\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                f'pids_limit = 0\n[network]\nnetwork_backend = "{backend}"\ncni_plugin_dirs = ["{benchlib.REFERENCE_DIR}"]\n'
                f'network_config_dir = "{state}/net"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n'
                f'tmp_dir = "{run}/tmp"\nlock_type = "file"\nruntime = "runc"\n')
        with open(state + "/storage.conf", "w") as f:
            f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{state}/root"\nrunroot = "{run}/runroot"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=state + "/containers.conf",
                        CONTAINERS_STORAGE_CONF=state + "/storage.conf", CONTAINERS_REGISTRIES_CONF="/dev/null")
        self.base = ["podman"]

    def run(self, host, rootfs, port):
        return run_in(host, self.base + ["run", "-d", "-p", f"{port}:80", "--rootfs", rootfs] + SERVER, self.env)

    def remove(self, host, cid):
        run_in(host, self.base + ["rm", "-f", "-t", "0", cid], self.env)

    def remove_all(self, host):
        with benchlib.in_netns(host):
            subprocess.run(self.base + ["rm", "-f", "-a", "-t", "0"], capture_output=True, env=self.env)


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,100")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--peers", default="pier,podman-cni,podman-netavark")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds to pause before each sample (see write_report)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    peers = args.peers.split(",")

    bin_dir = benchlib.build_release()
    cni_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam", "portmap"])
    rootfs = make_rootfs()
    leases = benchlib.temporary_directory("pier-bench-leases-")
    runtimes = {}
    for peer in peers:
        state = benchlib.temporary_directory(f"pier-bench-{peer}-")
        runtimes[peer] = (Pier(os.path.join(bin_dir, "pier"), cni_path, state, leases) if peer == "pier"
                          else Podman(peer.split("-", 1)[1], state))
    hosts = {peer: benchlib.Netns("pier-b-e2e").__enter__() for peer in peers}
    background = {peer: [] for peer in peers}
    results = {}
    try:
        for host in hosts.values():
            # A local address of the host to connect to (no dummy driver here: a veth pair, both ends up).
            for cmd in (["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                        ["addr", "add", f"{HOST_ADDRESS}/24", "dev", "d0"], ["link", "set", "d0", "up"],
                        ["link", "set", "d1", "up"]):
                subprocess.run(["ip", "-n", host.name] + cmd, check=True)
        for level in levels:
            for peer, runtime in runtimes.items():
                while len(background[peer]) < level - 1:
                    background[peer].append(runtime.run(hosts[peer].name, rootfs, 20000 + len(background[peer])))
            samples = {peer: {"run": [], "rm": []} for peer in peers}
            for i in range(args.samples):
                for peer, runtime in runtimes.items():
                    host = hosts[peer].name
                    port = 40000 + i
                    time.sleep(args.settle)
                    start = time.perf_counter()
                    cid = runtime.run(host, rootfs, port)
                    wait_answer(host, port)
                    samples[peer]["run"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    runtime.remove(host, cid)
                    samples[peer]["rm"].append(time.perf_counter() - start)
            results[level] = {p: {k: statistics.median(v) * 1000 for k, v in s.items()} for p, s in samples.items()}
            print(level, results[level], flush=True)
            for peer in peers:
                print(f"  {peer} run samples ms:", [round(x * 1000, 1) for x in samples[peer]["run"]], flush=True)
            write_report(args, peers, levels, results, partial=level != levels[-1])
    finally:
        for peer, runtime in runtimes.items():
            if isinstance(runtime, Podman):
                runtime.remove_all(hosts[peer].name)
            else:
                for cid in background[peer]:
                    try:
                        runtime.remove(hosts[peer].name, cid)
                    except RuntimeError:
                        pass
        for host in hosts.values():
            host.__exit__(None, None, None)
    write_report(args, peers, levels, results)


def write_report(args, peers, levels, results, partial=False):
    report = "# End to end: `run -d` until the container answers on its published port\n\n"
    report += (
        "Same rootfs (static busybox `httpd`), same published TCP port, each runtime inside its own test host "
        "namespace; the clock runs from starting `run -d` until an HTTP GET to a local address of that host on "
        "the published port is answered (polled every millisecond), then `rm -f` is timed. What each runtime "
        "keeps under /run on a standard host (`pier`'s state root; Podman's runroot and tmp_dir) is on a tmpfs, "
        "as /run is there; leases, the result cache and Podman's image store are on disk (`benchlib."
        "runtime_state_directory` says why). `pier` with Pier's "
        "plugins (run in-process); `podman-cni` = Podman 4.3 with its CNI backend and the reference plugins "
        "(/usr/lib/cni); `podman-netavark` = Podman with netavark 1.4. N = running containers including the "
        f"measured one. Median of {args.samples} samples, interleaved between runtimes, each after a "
        f"{args.settle:g} s pause: what a runtime leaves running once its command returned (Podman's conmon starts "
        "`podman container cleanup` when a container exits) must not land in the next runtime's sample. The "
        "machine is shared with other jobs, so absolute numbers are noisy.\n\n")
    headers = ["N"] + [f"{p} run→answer ms" for p in peers] + [f"{p} rm ms" for p in peers]
    if "pier" in peers:
        headers += [f"pier ÷ {p}" for p in peers if p != "pier"]
    rows = []
    for level in [lv for lv in levels if lv in results]:
        r = results[level]
        row = [level] + [f"{r[p]['run']:.0f}" for p in peers] + [f"{r[p]['rm']:.0f}" for p in peers]
        if "pier" in peers:
            row += [f"{r['pier']['run'] / r[p]['run']:.2f}×" for p in peers if p != "pier"]
        rows.append(row)
    report += benchlib.table(headers, rows) + "\n"
    if partial:
        report += "\n(partial: the run stopped before every level was measured)\n"
    else:
        print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "e2e.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
