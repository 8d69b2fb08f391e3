"""Shared helpers for Pier's benchmarks: build, exec plugins as a runtime does, measure.

Every benchmark runs Pier's plugins and the reference Go plugins (Debian's
containernetworking-plugins, /usr/lib/cni) side by side in one run, inside network
namespaces the benchmark creates and removes itself.
"""
import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = "/usr/lib/cni"


_TEMPORARIES = []


def _remove_temporaries():
    for path in _TEMPORARIES:
        shutil.rmtree(path, ignore_errors=True)


atexit.register(_remove_temporaries)
# SIGTERM (a timeout, a CI runner stopping) unwinds like an exception, so every `finally`
# and context manager below still removes its namespaces.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def temporary_directory(prefix):
    """A private directory removed when the benchmark exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    _TEMPORARIES.append(path)
    return path


_RUN_TMPFS = []


def _unmount_run_tmpfs():
    for path in _RUN_TMPFS:
        subprocess.run(["umount", "-l", path], check=False)
        shutil.rmtree(path, ignore_errors=True)


def runtime_state_directory(prefix):
    """A private directory for what a runtime keeps under /run (`pier`'s state root, Podman's
    runroot), on a tmpfs mounted for the benchmark and unmounted when it exits: /run is a tmpfs
    on a standard host. Here it is the root ext4, which has no journal; there, creating a file
    scans past every inode deleted in the last minutes while their inode table block is dirty
    (~0.2-0.5 ms a file after a benchmark removed a thousand containers), a cost of this
    machine that would land on whichever runtime runs next. Persistent state (leases, the
    result cache, Podman's image store) stays on disk, as on a standard host."""
    if not _RUN_TMPFS:
        path = tempfile.mkdtemp(prefix="pier-bench-run-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g,mode=0700", "pier-bench-run", path], check=True)
        _RUN_TMPFS.append(path)
        atexit.register(_unmount_run_tmpfs)
    return tempfile.mkdtemp(prefix=prefix, dir=_RUN_TMPFS[0])


def build_release():
    """The binaries as they ship (scripts/build-release says which flags and why)."""
    out = subprocess.run(
        [os.path.join(ROOT, "scripts", "build-release")], cwd=ROOT, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def spawnrss():
    """Builds bench/spawnrss.c once: it measures a command's own peak RSS."""
    source = os.path.join(ROOT, "bench", "spawnrss.c")
    binary = os.path.join(tempfile.gettempdir(), "pier-bench-spawnrss")
    if not os.path.exists(binary) or os.path.getmtime(binary) < os.path.getmtime(source):
        subprocess.run(["cc", "-O2", "-o", binary, source], check=True)
    return binary


def peak_rss_kib(path, command, config, env_extra=None):
    """The plugin's own peak RSS (KiB) for one invocation."""
    _, _, status, out, err = run_plugin(spawnrss(), command, config, env_extra, argv_tail=[path])
    for line in err.splitlines():
        if line.startswith("pier-bench-maxrss="):
            return int(line.split("=", 1)[1])
    raise RuntimeError(f"no RSS reported for {path}: {err}")


def install_stripped(bin_dir, names):
    """Installs the plugins into a private CNI_PATH directory exactly as scripts/install does
    (the stripped multi-call executable plus one hard link per plugin name). `names` must all
    be among them."""
    target = temporary_directory("pier-bench-bin-")
    subprocess.run(
        [os.path.join(ROOT, "scripts", "install"), "--plugins-only", "--from", bin_dir, "--cni-bin-dir", target],
        cwd=ROOT, check=True, capture_output=True)
    missing = [name for name in names if not os.path.exists(os.path.join(target, name))]
    if missing:
        raise RuntimeError(f"not installed: {missing}")
    return target


def run_plugin(path, command, config, env_extra=None, netns_name=None, argv_tail=None):
    """Execs one plugin as a runtime does; returns (seconds, peak RSS KiB, status, stdout, stderr)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command}
    env.update(env_extra or {})
    argv = [path] + (argv_tail or [])
    if netns_name:
        # The plugin runs inside the test host, as a runtime there would run it: the benchmark
        # itself switches into the host's network namespace around the spawn, so no wrapper
        # process (nsenter, `ip netns exec`) adds its own start-up to the measurement.
        with in_netns(netns_name):
            return _spawn_and_wait(argv, env, config)
    return _spawn_and_wait(argv, env, config)


_LIBC = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000
_HOME_NETNS = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


@contextlib.contextmanager
def in_netns(name):
    """Runs the block with this thread in network namespace `name` (children spawned in the
    block are born there), and always returns to the benchmark's own namespace."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        try:
            yield
        finally:
            if _LIBC.setns(_HOME_NETNS, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
    finally:
        os.close(fd)


def _spawn_and_wait(argv, env, config):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2),
        (os.POSIX_SPAWN_CLOSE, in_w), (os.POSIX_SPAWN_CLOSE, out_r), (os.POSIX_SPAWN_CLOSE, err_r)])
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    try:
        os.write(in_w, config.encode())
    except BrokenPipeError:
        pass  # the plugin did not read stdin (VERSION) and has exited already
    os.close(in_w)
    chunks = {out_r: [], err_r: []}
    open_fds = [out_r, err_r]
    import select
    while open_fds:
        ready, _, _ = select.select(open_fds, [], [])
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
                os.close(fd)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss, code, b"".join(chunks[out_r]).decode(), b"".join(chunks[err_r]).decode()


def measure(fn, repeat):
    """Runs fn() `repeat` times; returns a list of its first return values (seconds)."""
    return [fn() for _ in range(repeat)]


def summarize(samples):
    samples = sorted(samples)
    return {
        "median_ms": statistics.median(samples) * 1000,
        "p90_ms": samples[int(len(samples) * 0.9) - 1] * 1000 if len(samples) >= 10 else max(samples) * 1000,
        "min_ms": samples[0] * 1000,
        "n": len(samples),
    }


class Netns:
    """A throwaway network namespace for benchmarks; removed on exit, even on error."""

    def __init__(self, prefix="pier-b"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "delete", self.name], check=False)

    @property
    def path(self):
        return f"/run/netns/{self.name}"


class NetnsBatch:
    """`count` throwaway namespaces created before a level's samples and deleted after them.
    The kernel tears a deleted namespace down asynchronously, holding the RTNL lock that every
    link change and lookup needs; deleting each sample's namespace right after its DEL made the
    next sample's ADD wait for that teardown, which grows with the number of namespaces on the
    machine. That is the benchmark's own cost, not a plugin's, so no sample pays it."""

    def __init__(self, prefix, count):
        self.namespaces = [Netns(prefix) for _ in range(count)]
        self._entered = []

    def __enter__(self):
        try:
            for ns in self.namespaces:
                self._entered.append(ns.__enter__())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.namespaces

    def __exit__(self, *exc):
        for ns in self._entered:
            ns.__exit__(None, None, None)


def measure_level(runners, count, runtime_config=None):
    """One level's samples, interleaved so machine noise hits every runner alike: for each
    sample i, each runner's ADD then DEL, in a namespace made before the level. A runner is a
    `Chain` or anything with the same add/delete (the kernel floors). `runtime_config(i)` is
    sample i's runtimeConfig. Returns {kind: {"add": [seconds], "del": [seconds]}}."""
    samples = {kind: {"add": [], "del": []} for kind in runners}
    with contextlib.ExitStack() as stack:
        namespaces = {kind: stack.enter_context(NetnsBatch(f"pier-b-{kind}", count)) for kind in runners}
        for i in range(count):
            rc = runtime_config(i) if runtime_config else None
            for kind, runner in runners.items():
                ns = namespaces[kind][i]
                cid = f"m-{ns.name}"
                add_s, state = runner.add(cid, ns.path, runtime_config=rc)
                samples[kind]["add"].append(add_s)
                samples[kind]["del"].append(runner.delete(cid, ns.path, state, runtime_config=rc))
    return samples


def require_root():
    if os.geteuid() != 0:
        sys.exit("benchmarks create network namespaces: run as root")


def table(headers, rows):
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


class Chain:
    """Runs a network config list the way libcni does: ADD in order with each plugin's output
    as the next one's prevResult, DEL in reverse with the final result. Used to drive Pier's
    chain and the reference chain identically."""

    def __init__(self, conflist, cni_path, host_netns):
        self.conflist = conflist
        self.cni_path = cni_path
        self.host_netns = host_netns  # the namespace playing the host (plugins run inside it)
        self.measure_rss = False
        self.peak_rss_kib = {}  # (plugin type, command) -> KiB, while measure_rss is on

    def _plugin_stdin(self, plugin, prev_result, runtime_config):
        conf = dict(plugin)
        conf["cniVersion"] = self.conflist["cniVersion"]
        conf["name"] = self.conflist["name"]
        if prev_result is not None:
            conf["prevResult"] = prev_result
        caps = {k: v for k, v in (runtime_config or {}).items() if plugin.get("capabilities", {}).get(k)}
        if caps:
            conf["runtimeConfig"] = caps
        return json.dumps(conf)

    def _exec(self, plugin, command, container_id, netns, ifname, stdin):
        env = {"CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
               "CNI_PATH": self.cni_path}
        path = os.path.join(self.cni_path, plugin["type"])
        if not self.measure_rss:
            return run_plugin(path, command, stdin, env, netns_name=self.host_netns)
        # Through spawnrss: the plugin's own peak RSS (a delegated IPAM process is not counted
        # in its parent's, so it is reported by the IPAM plugin's own exec, if any).
        elapsed, rss, status, out, err = run_plugin(
            spawnrss(), command, stdin, env, netns_name=self.host_netns, argv_tail=[path])
        kept = []
        for line in err.splitlines():
            if line.startswith("pier-bench-maxrss="):
                key = (plugin["type"], command)
                self.peak_rss_kib[key] = max(self.peak_rss_kib.get(key, 0), int(line.split("=", 1)[1]))
            else:
                kept.append(line)
        return elapsed, rss, status, out, "\n".join(kept)

    def add(self, container_id, netns, ifname="eth0", runtime_config=None):
        """Returns (seconds for the whole chain, final result)."""
        prev = None
        total = 0.0
        for plugin in self.conflist["plugins"]:
            elapsed, _, status, out, err = self._exec(
                plugin, "ADD", container_id, netns, ifname, self._plugin_stdin(plugin, prev, runtime_config))
            total += elapsed
            if status != 0:
                raise RuntimeError(f"{plugin['type']} ADD failed ({status}): {out} {err}")
            prev = json.loads(out)
        return total, prev

    def delete(self, container_id, netns, result, ifname="eth0", runtime_config=None):
        total = 0.0
        for plugin in reversed(self.conflist["plugins"]):
            elapsed, _, status, out, err = self._exec(
                plugin, "DEL", container_id, netns, ifname, self._plugin_stdin(plugin, result, runtime_config))
            total += elapsed
            if status != 0:
                raise RuntimeError(f"{plugin['type']} DEL failed ({status}): {out} {err}")
        return total
