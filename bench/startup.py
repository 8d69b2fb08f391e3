#!/usr/bin/env python3
"""VERSION start-up time, peak RSS and binary size: Pier's plugins beside the reference.

Start-up dominates a plugin's latency, so this is the floor under every ADD and DEL.
Usage: bench/startup.py [--repeat N]   (writes bench/results/startup.md)
"""
import argparse
import os

import benchlib

PAIRS = [  # (pier plugin, closest reference plugin)
    ("ipam", "host-local"),
    ("bridge", "bridge"),
    ("portmap", "portmap"),
    ("macvlan", "macvlan"),
    ("host", "host-device"),
    ("vxlan-overlay", "vlan"),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    bin_dir = benchlib.build_release()
    present = [(p, r) for p, r in PAIRS if os.path.exists(os.path.join(bin_dir, p))]
    cni_path = benchlib.install_stripped(bin_dir, [p for p, _ in present])
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
    report = "# VERSION start-up: Pier beside the reference plugins\n\n"
    report += f"{args.repeat} runs each, same machine, same run; stripped release builds (Swift runtime static).\n\n"
    report += benchlib.table(
        ["plugin (pier / reference)", "pier median ms", "ref median ms", "ratio",
         "pier peak RSS MiB", "ref peak RSS MiB", "pier size MB", "ref size MB"], rows)
    print(report)
    with open(os.path.join(benchlib.ROOT, "bench", "results", "startup.md"), "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
