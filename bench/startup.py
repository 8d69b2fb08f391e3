#!/usr/bin/env python3
"""VERSION start-up time, peak RSS and install size: Pier's plugins beside the reference; then
the peak RSS of one bridge ADD and DEL (Pier's bridge+ipam beside the reference's
bridge+host-local, in namespaces made and removed here), and the floor any Swift plugin pays.

Start-up dominates a plugin's latency, so this is the floor under every ADD and DEL. Pier's
plugins are one multi-call executable linked under every name, so its install size is that one
file; the reference's is the sum of its separate executables.
Usage: bench/startup.py [--repeat N]   (as root; writes bench/results/startup.md)
"""
import argparse
import os
import shutil
import statistics
import subprocess

import benchlib

RSS_SAMPLES = 5

PAIRS = [  # (pier plugin, closest reference plugin)
    ("host-local", "host-local"),
    ("bridge", "bridge"),
    ("portmap", "portmap"),
    ("loopback", "loopback"),
    ("firewall", "firewall"),
    ("tuning", "tuning"),
    ("bandwidth", "bandwidth"),
    ("macvlan", "macvlan"),
    ("host-device", "host-device"),
    ("vxlan-overlay", "vlan"),
]
# The reference plugins a typical runtime config needs (Podman's and containerd's defaults).
COMMON_FIVE = ["bridge", "host-local", "loopback", "portmap", "firewall"]


def bridge_rss(cni_path):
    """Median peak RSS (KiB) of the bridge process's ADD and DEL, per chain: each sample in a
    container namespace of its own, the plugins run inside a test host namespace."""
    data_dir = benchlib.temporary_directory("pier-bench-rss-leases-")
    chains = {
        "pier": (cni_path, "ipam", "10.156.0.0/16"),
        "ref": (benchlib.REFERENCE_DIR, "host-local", "10.157.0.0/16"),
    }
    peaks = {}
    for kind, (directory, ipam, subnet) in chains.items():
        conflist = {
            "cniVersion": "1.0.0", "name": f"rss-{kind}",
            "plugins": [{
                "type": "bridge", "bridge": f"rss{kind}0", "isGateway": True, "isDefaultGateway": True, "ipMasq": True,
                "ipam": {"type": ipam, "dataDir": data_dir, "ranges": [[{"subnet": subnet}]]},
            }],
        }
        samples = {"ADD": [], "DEL": []}
        with benchlib.Netns("pier-b-host") as host:
            chain = benchlib.Chain(conflist, directory, host.name)
            chain.measure_rss = True
            with benchlib.NetnsBatch(f"pier-b-rss-{kind}", RSS_SAMPLES) as namespaces:
                for ns in namespaces:
                    chain.peak_rss_kib = {}
                    _, result = chain.add(f"rss-{ns.name}", ns.path)
                    chain.delete(f"rss-{ns.name}", ns.path, result)
                    for command in samples:
                        samples[command].append(chain.peak_rss_kib[("bridge", command)])
        peaks[kind] = {command: statistics.median(values) for command, values in samples.items()}
    return peaks


def swift_floor():
    """Peak RSS (KiB, median) of the two smallest Swift programs built and linked as pier-cni is
    (bench/floor): one that prints a VERSION answer, one that reads stdin, dumps the links over
    rtnetlink and writes JSON. None if the toolchain pieces are missing."""
    # scripts/build-release's lld (every -lm as-needed) and CPierShim's math functions: no libm.so,
    # as in pier-cni.
    lld = os.path.join(benchlib.ROOT, ".build", "release-ld")
    static_cxx = os.path.join(benchlib.ROOT, ".build", "static-libstdcxx")
    if not os.path.exists(lld):
        return None
    out_dir = benchlib.temporary_directory("pier-bench-floor-")
    math = os.path.join(out_dir, "libm.o")
    clang = os.path.join(os.path.dirname(os.path.realpath(shutil.which("swift"))), "clang")
    subprocess.run([clang, "-O2", "-c", os.path.join(benchlib.ROOT, "Sources", "CPierShim", "libm.c"), "-o", math],
                   check=True)
    floors = {}
    for program in ("hello", "netlink"):
        binary = os.path.join(out_dir, program)
        subprocess.run(
            ["swiftc", "-Osize", "-static-stdlib", "-Xlinker", "-no-pie", "-Xlinker", "--no-export-dynamic",
             "-Xclang-linker", "-static-libgcc", f"-L{static_cxx}", f"-ld-path={lld}", math,
             os.path.join(benchlib.ROOT, "bench", "floor", f"{program}.swift"), "-o", binary],
            check=True, capture_output=True)
        subprocess.run(["strip", binary], check=True)
        floors[program] = statistics.median(
            benchlib.peak_rss_kib(binary, "VERSION", "{}") for _ in range(RSS_SAMPLES))
    return floors


def main():
    benchlib.require_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    bin_dir = benchlib.build_release()
    cni_path = benchlib.install_stripped(bin_dir, [])
    present = [(p, r) for p, r in PAIRS if os.path.exists(os.path.join(cni_path, p))]
    config = '{"cniVersion":"1.1.0"}'
    rows = []
    for pier_name, ref_name in present:
        results = {}
        for label, path in (("pier", os.path.join(cni_path, pier_name)),
                            ("ref", os.path.join(benchlib.REFERENCE_DIR, ref_name))):
            times = []
            for _ in range(args.repeat):
                elapsed, _, status, out, err = benchlib.run_plugin(path, "VERSION", config)
                assert status == 0 and "supportedVersions" in out, (path, status, out, err)
                times.append(elapsed)
            peaks = [benchlib.peak_rss_kib(path, "VERSION", config) for _ in range(5)]
            results[label] = (benchlib.summarize(times), max(peaks), os.path.getsize(path))
        p, r = results["pier"], results["ref"]
        rows.append([
            f"{pier_name} / {ref_name}",
            f"{p[0]['median_ms']:.2f}", f"{r[0]['median_ms']:.2f}", f"{p[0]['median_ms'] / r[0]['median_ms']:.2f}×",
            f"{p[1] / 1024:.1f}", f"{r[1] / 1024:.1f}",
            f"{p[2] / 1e6:.1f}", f"{r[2] / 1e6:.1f}",
        ])
    # Hard links share one inode: count each file once.
    inodes = {}
    for name in os.listdir(cni_path):
        st = os.stat(os.path.join(cni_path, name))
        inodes[st.st_ino] = st.st_size
    pier_install = sum(inodes.values())
    names = len(os.listdir(cni_path))
    ref_five = sum(os.path.getsize(os.path.join(benchlib.REFERENCE_DIR, n)) for n in COMMON_FIVE)
    ref_all = sum(os.path.getsize(os.path.join(benchlib.REFERENCE_DIR, n)) for _, n in present)
    report = "# VERSION start-up: Pier beside the reference plugins\n\n"
    report += (f"Install size: Pier, every plugin ({names} names, one stripped file): {pier_install / 2**20:.2f} MiB; "
               f"reference, the five common plugins ({', '.join(COMMON_FIVE)}): {ref_five / 2**20:.2f} MiB; "
               f"reference, the {len(present)} plugins compared below: {ref_all / 2**20:.2f} MiB.\n\n")
    report += f"{args.repeat} runs each, same machine, same run; stripped release builds (Swift runtime static).\n\n"
    report += benchlib.table(
        ["plugin (pier / reference)", "pier median ms", "ref median ms", "ratio",
         "pier peak RSS MiB", "ref peak RSS MiB", "pier size MB", "ref size MB"], rows)
    peaks = bridge_rss(cni_path)
    report += (f"\n\nPeak RSS of the `bridge` process, one ADD and one DEL (MiB, median of {RSS_SAMPLES}, each in a "
               "namespace of its own; Pier's bridge runs `ipam` in-process, the reference's execs `host-local` as a "
               "second process, not counted here):\n\n")
    report += benchlib.table(
        ["verb", "pier bridge+ipam MiB", "ref bridge+host-local MiB"],
        [[command, f"{peaks['pier'][command] / 1024:.1f}", f"{peaks['ref'][command] / 1024:.1f}"]
         for command in ("ADD", "DEL")])
    floors = swift_floor()
    if floors:
        report += ("\n\nThe floor any Swift plugin pays here, built and linked as pier-cni is (`bench/floor`): "
                   f"a program that only prints a VERSION answer peaks at {floors['hello'] / 1024:.1f} MiB; one that "
                   "reads its config, dumps the links over rtnetlink and writes JSON at "
                   f"{floors['netlink'] / 1024:.1f} MiB (docs/design.md, \"Peak RSS\").")
    print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "startup.md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
