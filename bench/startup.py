#!/usr/bin/env python3
"""VERSION start-up time, peak RSS and install size: Pier's plugins beside the reference.

Start-up dominates a plugin's latency, so this is the floor under every ADD and DEL. Pier's
plugins are one multi-call executable linked under every name, so its install size is that one
file; the reference's is the sum of its separate executables.
Usage: bench/startup.py [--repeat N]   (writes bench/results/startup.md)
"""
import argparse
import os

import benchlib

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


def main():
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
    print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "startup.md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
