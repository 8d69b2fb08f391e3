#!/usr/bin/env python3
"""Per-container network set-up and teardown, one published TCP port, at several numbers of
containers already running, for every peer in one interleaved run:

- `pier`: the runtime itself (`pier plugin add/del`, which runs the network's conflist exactly
  as `pier run`/`pier rm` do). Pier's own plugins run in a forked child of `pier`, no exec.
  The `pier` process's own start-up (`pier --version`, measured in the same run) is reported
  beside it and subtracted for the chain's cost.
- `pier exec`: Pier's plugins exec'd one by one by a libcni-style driver (what containerd,
  cri-o or Podman's CNI backend do).
- `ref`: the reference plugins (Debian containernetworking-plugins, iptables portmap), same driver.
- `netavark`: Podman's network backend (`netavark setup`/`teardown`, iptables driver) on an
  equivalent bridge network, static IP given as Podman gives it.
- the kernel floor (`portmap.PortFloor`): the veth, address, route and one DNAT map element
  done by iproute2 and nft, no plugin logic.

Usage: bench/netavark.py [--levels 1,100,1000] [--samples 10]   (as root; writes
bench/results/netavark.md). Background containers are removed with their host namespaces.
"""
import argparse
import json
import os
import statistics

import benchlib
from portmap import PortFloor, conflist, mapping

NETAVARK = "/usr/lib/podman/netavark"


class PierRuntime:
    """`pier plugin add/del` inside the test host: the chain as `pier` itself runs it."""

    def __init__(self, pier, cni_path, host_netns, network, state_dir):
        self.host_netns = host_netns
        self.network = network
        self.base = [pier, "--root", state_dir + "/root", "--cache-dir", state_dir + "/cache", "--config-dir",
                     state_dir + "/conf", "--cni-path", cni_path]
        self.pier = pier

    def _pier(self, argv):
        elapsed, _, status, out, err = benchlib.run_plugin(
            self.pier, "", "", netns_name=self.host_netns, argv_tail=self.base[1:] + argv)
        if status != 0:
            raise RuntimeError(f"pier {' '.join(argv)} failed ({status}): {out} {err}")
        return elapsed, out

    def add(self, container_id, netns, runtime_config=None):
        cap = ["--cap", json.dumps(runtime_config)] if runtime_config else []
        elapsed, out = self._pier(["plugin", "add", "--net", self.network, "--netns", netns] + cap)
        return elapsed, json.loads(out)

    def delete(self, container_id, netns, state, runtime_config=None):
        cap = ["--cap", json.dumps(runtime_config)] if runtime_config else []
        return self._pier(["plugin", "del", "--net", self.network, "--netns", netns] + cap)[0]


class PierStartup:
    """`pier --version`: what the `pier` process costs before any network work, for subtraction."""

    def __init__(self, pier):
        self.pier = pier

    def _run(self):
        elapsed, _, status, _, err = benchlib.run_plugin(self.pier, "", "", argv_tail=["--version"])
        if status != 0:
            raise RuntimeError(f"pier --version failed: {err}")
        return elapsed

    def add(self, container_id, netns, runtime_config=None):
        return self._run(), None

    def delete(self, container_id, netns, state, runtime_config=None):
        return self._run()


class Netavark:
    """`netavark setup`/`teardown` as Podman runs them: the network definition and the
    container's static IP and port mappings on stdin, run inside the test host."""

    def __init__(self, host_netns, bridge, subnet_prefix, config_dir):
        self.host_netns = host_netns
        self.bridge = bridge
        self.prefix = subnet_prefix  # "10.156"
        self.config_dir = config_dir
        self.count = 0

    def _options(self, container_id, address, runtime_config):
        ports = [{"host_ip": "", "container_port": m["containerPort"], "host_port": m["hostPort"], "range": 1,
                  "protocol": m["protocol"]} for m in (runtime_config or {}).get("portMappings", [])]
        return json.dumps({
            "container_id": container_id.replace("-", "").ljust(64, "0")[:64], "container_name": container_id,
            "port_mappings": ports,
            "networks": {"bench": {"static_ips": [address], "interface_name": "eth0"}},
            "network_info": {"bench": {
                "name": "bench", "id": "b" * 64, "driver": "bridge", "network_interface": self.bridge,
                "subnets": [{"subnet": f"{self.prefix}.0.0/16", "gateway": f"{self.prefix}.0.1"}],
                "ipv6_enabled": False, "internal": False, "dns_enabled": False,
                "ipam_options": {"driver": "host-local"}}},
        })

    def _run(self, verb, netns, options):
        elapsed, _, status, out, err = benchlib.run_plugin(
            NETAVARK, "", options, netns_name=self.host_netns, argv_tail=["--config", self.config_dir, verb, netns])
        if status != 0:
            raise RuntimeError(f"netavark {verb} failed ({status}): {out} {err}")
        return elapsed

    def add(self, container_id, netns, runtime_config=None):
        self.count += 1
        address = f"{self.prefix}.{2 + self.count // 250}.{2 + self.count % 250}"
        options = self._options(container_id, address, runtime_config)
        return self._run("setup", netns, options), options

    def delete(self, container_id, netns, options, runtime_config=None):
        return self._run("teardown", netns, options)


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,100")
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    bin_dir = benchlib.build_release()
    pier_path = benchlib.install_stripped(bin_dir, ["bridge", "ipam", "portmap"])
    pier_binary = os.path.join(bin_dir, "pier")
    leases = benchlib.temporary_directory("pier-bench-leases-")
    state = benchlib.temporary_directory("pier-bench-state-")
    netavark_config = benchlib.temporary_directory("pier-bench-netavark-")
    os.makedirs(state + "/conf")
    runtime_list = conflist("pier", "bench-nv-runtime", "piern0", "10.157.0.0/16", leases)
    with open(state + "/conf/bench-nv-runtime.conflist", "w") as f:
        json.dump(runtime_list, f)

    rows = []
    per_level = {}
    background = {}
    hosts = {kind: benchlib.Netns("pier-b-host").__enter__() for kind in ("pier", "exec", "ref", "nv", "floor")}
    try:
        runners = {
            "pier": PierRuntime(pier_binary, pier_path, hosts["pier"].name, "bench-nv-runtime", state),
            "exec": benchlib.Chain(conflist("pier", "bench-nv-exec", "piere0", "10.158.0.0/16", leases), pier_path,
                                   hosts["exec"].name),
            "ref": benchlib.Chain(conflist("ref", "bench-nv-ref", "refn0", "10.159.0.0/16", leases),
                                  benchlib.REFERENCE_DIR, hosts["ref"].name),
            "nv": Netavark(hosts["nv"].name, "nvbr0", "10.156", netavark_config),
            "floor": PortFloor("nfloor0", "10.160", hosts["floor"].name),
        }
        startup = PierStartup(pier_binary)
        for level in levels:
            for kind, runner in runners.items():
                done = background.setdefault(kind, [])
                while len(done) < level - 1:
                    ns = benchlib.Netns(f"pier-b-{kind}").__enter__()
                    done.append(ns)
                    runner.add(f"bg-{ns.name}", ns.path, runtime_config=mapping(20000 + len(done)))
            samples = benchlib.measure_level(
                dict(runners, start=startup), args.samples, runtime_config=lambda i: mapping(40000 + i))
            med = {k: {v: statistics.median(samples[k][v]) * 1000 for v in ("add", "del")} for k in samples}
            per_level[level] = med
            print(level, {k: {v: round(x, 1) for v, x in m.items()} for k, m in med.items()}, flush=True)
            write_report(args, levels, per_level, partial=level != levels[-1])
    finally:
        for kind in background:
            for ns in background[kind]:
                ns.__exit__(None, None, None)
        for ns in hosts.values():
            ns.__exit__(None, None, None)
    write_report(args, levels, per_level)


def write_report(args, levels, per_level, partial=False):
    report = "# Per-container set-up and teardown: Pier beside the reference plugins, netavark and the kernel floor\n\n"
    report += (
        "Bridge network with one published TCP port per container, N = containers already attached including the "
        "measured one. Peers, all in one run and interleaved sample by sample (the machine is shared with other "
        "jobs compiling, so absolute numbers are noisy; ratios within a row are the comparison): "
        "**pier** = `pier plugin add/del` (the conflist run exactly as `pier run`/`pier rm` run it; Pier's own "
        "plugins in a forked child of `pier`, no exec), with **pier chain** = that minus `pier --version` "
        "(the `pier` process's own start-up, measured alongside); **exec** = Pier's `bridge`+`ipam`+`portmap` exec'd "
        "by a libcni-style driver, as other runtimes run them; **ref** = reference `bridge`+`host-local`+`portmap` "
        "(iptables), same driver; **netavark** = `netavark setup`/`teardown` 1.4 (Podman's backend, iptables "
        "driver), static IP as Podman passes it; **floor** = the same kernel work by `ip -batch` and `nft -f` "
        f"(`portmap.PortFloor`). Median of {args.samples} samples per level, milliseconds; stripped release builds.\n\n")
    rows = []
    for level in [lv for lv in levels if lv in per_level]:
        m = per_level[level]
        row = [level]
        for verb in ("add", "del"):
            chain = m["pier"][verb] - m["start"][verb]
            row += [f"{m['floor'][verb]:.1f}", f"{m['pier'][verb]:.1f}", f"{chain:.1f} ({chain / m['floor'][verb]:.2f}×)",
                    f"{m['exec'][verb]:.1f} ({m['exec'][verb] / m['floor'][verb]:.2f}×)",
                    f"{m['ref'][verb]:.1f}", f"{m['nv'][verb]:.1f}",
                    f"{m['exec'][verb] / m['nv'][verb]:.2f}× / {chain / m['nv'][verb]:.2f}×"]
        rows.append(row)
    headers = ["N"]
    for verb in ("ADD", "DEL"):
        headers += [f"floor {verb}", f"pier {verb}", f"pier chain {verb} (÷floor)", f"exec {verb} (÷floor)",
                    f"ref {verb}", f"netavark {verb}", f"exec / chain ÷ netavark {verb}"]
    report += benchlib.table(headers, rows) + "\n"
    starts = [f"N={lv}: {per_level[lv]['start']['add']:.1f} ms" for lv in levels if lv in per_level]
    report += f"\n`pier --version` (process start-up, subtracted above): {', '.join(starts)}.\n"
    done = [lv for lv in levels if lv in per_level]
    if len(done) > 1:
        first, last = done[0], done[-1]
        growth = {k: {v: per_level[last][k][v] / per_level[first][k][v] for v in ("add", "del")}
                  for k in ("floor", "pier", "exec", "ref", "nv")}
        report += (f"\nGrowth N={last} ÷ N={first}, ADD/DEL: " + ", ".join(
            f"{k} {g['add']:.2f}/{g['del']:.2f}" for k, g in growth.items()) + ".\n")
    if partial:
        report += "\n(partial: the run stopped before every level was measured)\n"
    else:
        print(report)
    os.makedirs(os.path.join(benchlib.ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "netavark.md"), "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
