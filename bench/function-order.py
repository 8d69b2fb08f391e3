#!/usr/bin/env python3
"""Regenerates scripts/pier-cni.order: the functions a plugin exec runs, which
scripts/build-release has the linker place next to each other at the start of the text.

Each page of code a process touches is resident, and the kernel maps up to 64 KiB of the
file around every page fault; with the functions a plugin runs scattered over 7 MB of text,
nearly all of it was resident in every plugin process. Packed together they fill a few
hundred KiB (docs/design.md, "Peak RSS").

Profiles (callgrind, on a stripped copy: valgrind cannot read the Swift debug info) of what a
runtime does most: VERSION, and `bridge`+`ipam` ADD, CHECK and DEL in namespaces this script
creates and removes. Functions are listed in the order callgrind first reports them, each
once; the list only orders code, so a stale one costs memory, never correctness (a name the
linker no longer finds is skipped). After them come the data symbols the same runs read or
write (lackey's memory trace), so the data a plugin touches shares pages too.
Usage: bench/function-order.py   (as root, with valgrind; writes scripts/pier-cni.order)
"""
import bisect
import glob
import json
import os
import re
import shutil
import subprocess
import threading

import benchlib

ORDER_FILE = os.path.join(benchlib.ROOT, "scripts", "pier-cni.order")


def text_symbols(binary):
    """(address, size, names) of every function, by address: all the names a function has
    (aliases of merged functions) and none of size zero, which would shadow the function
    that really starts there."""
    out = subprocess.run(
        ["nm", "-n", "-S", "--defined-only", binary], check=True, capture_output=True, text=True).stdout
    by_address = {}
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in "tTwW" and int(parts[1], 16) > 0:
            address, size = int(parts[0], 16), int(parts[1], 16)
            known = by_address.setdefault(address, [0, []])
            known[0] = max(known[0], size)
            known[1].append(parts[3])
    return [(address, size, names) for address, (size, names) in sorted(by_address.items())]


def executed_functions(profile, object_suffix, symbols):
    """Names of the functions of `object_suffix` that ran, in the profile's order: every
    instruction address callgrind reports (--dump-instr) mapped to the function holding it, so
    code entered by a tail call (a jump, which callgrind does not see as a new function in a
    stripped binary) counts too. The profiled copy is stripped, but the executable is not
    relocatable (-no-pie), so the addresses are the unstripped binary's."""
    addresses = [address for address, _, _ in symbols]
    objects, current_object, names, seen = {}, None, [], set()
    for line in open(profile):
        if line.startswith("0x"):
            if current_object and current_object.endswith(object_suffix):
                address = int(line.split()[0], 16)
                at = bisect.bisect_right(addresses, address) - 1
                if at >= 0 and at not in seen and address < symbols[at][0] + symbols[at][1]:
                    seen.add(at)
                    names.extend(symbols[at][2])
            continue
        match = re.match(r"^(ob|cob)=\((\d+)\)(?: (.*))?$", line.strip())
        if match:
            kind, index, name = match.groups()
            if name:
                objects[index] = name
            if kind == "ob":
                current_object = objects.get(index)
    return names


def unmovable_functions():
    """Functions of the Swift runtime archives that share one plain `.text` section with others
    (the standard library's Swift.o keeps 1.5 MB there): the linker can only move that section
    whole, to where its first listed function is. Listed last, it goes after everything it could
    otherwise split up. Name -> its bindings there."""
    swift = os.path.realpath(shutil.which("swift"))
    static = os.path.join(os.path.dirname(os.path.dirname(swift)), "lib", "swift_static", "linux")
    names = {}
    for archive in sorted(glob.glob(os.path.join(static, "*.a"))):
        base = os.path.basename(archive)
        if not (base.startswith("libswift") or base in ("libdispatch.a", "libBlocksRuntime.a")):
            continue
        out = subprocess.run(["readelf", "-W", "-S", "-s", archive], capture_output=True, text=True).stdout
        plain = None
        for line in out.splitlines():
            if line.startswith("File: "):
                plain = None
                continue
            section = re.match(r"^\s*\[\s*(\d+)\] \.text\s", line)
            if section:
                plain = section.group(1)
                continue
            fields = line.split()
            if plain and len(fields) >= 8 and fields[3] == "FUNC" and fields[6] == plain:
                names.setdefault(fields[7], set()).add(fields[4])
    return names


def functions_with_own_section(bin_dir):
    """Functions that Pier's own objects define each in a section of its own, with their
    bindings (name -> {"WEAK", "GLOBAL", "LOCAL"})."""
    link_list = os.path.join(bin_dir, "pier-cni.product", "Objects.LinkFileList")
    objects = [line.strip().strip("'\"") for line in open(link_list) if line.strip()]
    out = subprocess.run(["readelf", "-W", "-S", "-s"] + objects, capture_output=True, text=True).stdout
    names, own = {}, set()
    for line in out.splitlines():
        if line.startswith("File: "):
            own = set()
            continue
        section = re.match(r"^\s*\[\s*(\d+)\] \.text\.\S+\s", line)
        if section:
            own.add(section.group(1))
            continue
        fields = line.split()
        if len(fields) >= 8 and fields[3] == "FUNC" and fields[6] in own:
            names.setdefault(fields[7], set()).add(fields[4])
    return names


def data_symbols(binary):
    """(address, size, name) of every data object with a size, by address."""
    out = subprocess.run(
        ["nm", "-n", "-S", "--defined-only", binary], check=True, capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in "dDrRbBvV" and int(parts[1], 16) > 0:
            found.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    return found


def touched_data(trace, symbols):
    """Names of the data objects a lackey memory trace reads or writes, in first-touch order."""
    addresses = [address for address, _, _ in symbols]
    names, seen = [], set()
    for line in trace:
        if line[:2] not in (" L", " S", " M"):
            continue
        address = int(line[3:].split(",", 1)[0], 16)
        at = bisect.bisect_right(addresses, address) - 1
        if at >= 0 and at not in seen and address < symbols[at][0] + symbols[at][1]:
            seen.add(at)
            names.append(symbols[at][2])
    return names


def main():
    benchlib.require_root()
    if not shutil.which("valgrind"):
        raise SystemExit("needs valgrind")
    bin_dir = benchlib.build_release()
    binary = os.path.join(bin_dir, "pier-cni")
    symbols = text_symbols(binary)
    profiled = benchlib.temporary_directory("pier-order-bin-")
    copy = os.path.join(profiled, "pier-cni")
    shutil.copy(binary, copy)
    subprocess.run(["strip", copy], check=True)
    os.link(copy, os.path.join(profiled, "bridge"))
    # Natively the bridge runs `ipam` in-process, because CNI_PATH's ipam is the very file of
    # /proc/self/exe; under valgrind that file is valgrind's tool, so CNI_PATH's ipam is a link
    # to the tool, or the profile would show the bridge exec'ing its IPAM instead.
    ipam = os.path.join(profiled, "ipam")

    def use_tool(name):
        if os.path.lexists(ipam):
            os.unlink(ipam)
        tool = next(iter(glob.glob(f"/usr/lib*/valgrind/{name}-amd64-linux")), None)
        if tool:
            os.symlink(tool, ipam)
        else:
            os.link(copy, ipam)

    profiles = benchlib.temporary_directory("pier-order-cg-")
    data_dir = benchlib.temporary_directory("pier-order-leases-")
    runs = []
    data_order = []
    data = data_symbols(binary)

    def profile(tool, label, command, config, env=None, netns_name=None):
        use_tool(tool)
        out = os.path.join(profiles, f"{len(runs):02d}-{label}")
        if tool == "callgrind":
            # Children too, should a plugin exec one.
            options = ["--trace-children=yes", "--dump-instr=yes", "--dump-line=no", "--compress-pos=no",
                       f"--callgrind-out-file={out}.%p.cg"]
        else:
            # Every load and store (hundreds of MB), read through a pipe as lackey writes it.
            os.mkfifo(f"{out}.trace")
            names = []
            reader = threading.Thread(target=lambda: names.extend(touched_data(open(f"{out}.trace"), data)))
            reader.start()
            options = ["--trace-mem=yes", f"--log-file={out}.trace"]
        valgrind = [f"--tool={tool}"] + options + [os.path.join(profiled, "bridge")]
        _, _, status, stdout, stderr = benchlib.run_plugin(
            shutil.which("valgrind"), command, config, env, netns_name=netns_name, argv_tail=valgrind)
        if tool == "callgrind":
            runs.extend(sorted(glob.glob(f"{out}.*.cg"), key=lambda path: int(path.split(".")[-2])))
        else:
            reader.join()
            os.unlink(f"{out}.trace")
            known = set(data_order)
            data_order.extend(name for name in dict.fromkeys(names) if name not in known)
        if status != 0:
            raise RuntimeError(f"{label} failed under {tool} ({status}): {stdout} {stderr[-2000:]}")
        return stdout

    config = json.dumps({
        "cniVersion": "1.0.0", "name": "order", "type": "bridge", "bridge": "orderb0", "isGateway": True,
        "isDefaultGateway": True, "ipMasq": True,
        "ipam": {"type": "ipam", "dataDir": data_dir, "ranges": [[{"subnet": "10.162.0.0/16"}]]},
    })
    # Code first (callgrind), then data (lackey's memory trace): each tool runs the same four.
    for tool in ("callgrind", "lackey"):
        profile(tool, "version", "VERSION", '{"cniVersion":"1.1.0"}')
        with benchlib.Netns("pier-order-host") as host, benchlib.Netns("pier-order-c") as container:
            env = {"CNI_CONTAINERID": "order-1", "CNI_NETNS": container.path, "CNI_IFNAME": "eth0",
                   "CNI_PATH": profiled}
            result = json.loads(profile(tool, "add", "ADD", config, env, host.name))
            with_result = json.dumps(dict(json.loads(config), prevResult=result))
            profile(tool, "check", "CHECK", with_result, env, host.name)
            profile(tool, "del", "DEL", with_result, env, host.name)
    order, seen = [], set()
    for run in runs:
        for name in sum((executed_functions(run, f"/{name}", symbols) for name in ("pier-cni", "bridge", "ipam")), []):
            if name not in seen:
                seen.add(name)
                order.append(name)
    # A generic specialization both Pier and the standard library compiled is Pier's own,
    # movable copy where both are weak (the linker keeps the first, and Pier's objects come
    # first). A local one in the archive is a different function of the same name, and listing
    # that name early would pull the whole section forward.
    own = functions_with_own_section(bin_dir)
    unmovable = {
        name for name, bindings in unmovable_functions().items()
        if not (name in own and bindings == {"WEAK"} and own[name] == {"WEAK"})
    }
    order = [name for name in order if name not in unmovable] + [name for name in order if name in unmovable]
    with open(ORDER_FILE, "w") as f:
        f.write("\n".join(order + data_order) + "\n")
    print(f"{len(order)} functions, {len(data_order)} data objects -> {os.path.relpath(ORDER_FILE, benchlib.ROOT)}")


if __name__ == "__main__":
    main()
