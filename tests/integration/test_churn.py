"""Process churn beside long-lived processes: 200 short-lived Python processes per second for
60 s (forks that each run a collection, and every tenth an exec'd interpreter) next to two
long-lived ones. The daemon must not crash, must keep profiling the long-lived ones, and must
return to its baseline in the kernel afterwards: perf-event fds (CPU sampling and uprobes),
and no entry of an exited process left in its pid, GC-stats and GC-histogram maps. The
kernel side is read through /proc/PID/fd{,info} and bpftool, not through the daemon."""
import glob
import json
import os
import re
import subprocess
import time
import uuid

from conftest import ZOO, workload_script
from daemon import Daemon, cpu_profiles, perf_fds

LONG = """
import gc, sys, time
print("ready", flush=True)
while True:  # about 20 % of a CPU, and a collection now and then
    end = time.monotonic() + 0.01
    while time.monotonic() < end:
        pass
    gc.collect(0)
    time.sleep(0.04)
"""

RATE, SECONDS = 200, 60


def daemon_maps(pid):
    """name -> map id of the BPF maps the daemon holds."""
    ids = set()
    for info in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            m = re.search(r"^map_id:\s+(\d+)$", open(info).read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    out = {}
    for i in ids:
        show = json.loads(subprocess.run(["bpftool", "-j", "map", "show", "id", str(i)],
                                         capture_output=True, text=True, check=True).stdout)
        out[show["name"]] = i
    return out


def key_pids(map_id):
    dump = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)],
                                     capture_output=True, text=True, check=True).stdout)
    pids = []
    for e in dump:
        key = e["formatted"]["key"] if "formatted" in e else e["key"]
        if isinstance(key, dict) and "pid" not in key:
            key = key["k"]  # gc_hist: the gc key leads it
        pids.append(key["pid"] if isinstance(key, dict) else
                    key if isinstance(key, int) else int.from_bytes(bytes(int(b, 16) for b in key[:4]), "little"))
    return pids


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


def test_churn_leaves_no_trace_and_keeps_profiling(tmp_path, workload):
    services = [f"long-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    longs = [workload(ZOO["py311"], LONG, env={"PYROMETER_SERVICE": s}) for s in services]
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store, "--interval", "2")
    time.sleep(3)
    maps = daemon_maps(d.proc.pid)
    assert {"procs", "gc_stats", "gc_hist"} <= set(maps), maps
    base_perf = perf_fds(d.proc.pid)
    churn = workload(ZOO["py311"], workload_script("churn.py"), [str(RATE), str(SECONDS)],
                     env={"PYROMETER_SERVICE": "churn"})
    # Children inherit tracking from their parent: churn only once the parent is tracked.
    end = time.monotonic() + 30
    while '\npython_gc_tracing_available{service_name="churn"} 1\n' not in d.metrics():
        assert time.monotonic() < end, "the churn parent was never tracked:\n" + d.log()
        time.sleep(0.2)
    churn.proc.stdin.write("go\n")
    churn.proc.stdin.flush()
    summary = json.loads(churn.proc.stdout.readline())
    # on a loaded machine the workload makes fewer than RATE a second: what it made is the
    # truth below, but it must be churn
    assert summary["forked"] + summary["execed"] >= 1000, summary
    churn.stop()
    assert d.proc.poll() is None, "the daemon died under churn:\n" + d.log()
    # The long-lived processes are still profiled after the churn.
    before = {s: len(cpu_profiles(glob.glob(f"{store}/{s}/*.pb.gz"))) for s in services}
    time.sleep(5)  # exits are retired 3 s after they happen
    for s in services:
        assert len(cpu_profiles(glob.glob(f"{store}/{s}/*.pb.gz"))) > before[s], f"{s} no longer profiled"
    # Back to baseline in the kernel: CPU sampling's perf events (the GC uprobes are the
    # installed interpreter's, attached from the start; test_production covers a binary
    # first seen during churn).
    assert perf_fds(d.proc.pid) == base_perf
    for name in ("procs", "gc_stats", "gc_hist"):
        stale = {p for p in key_pids(maps[name]) if not alive(p)}
        if stale:  # other tests' processes may be exiting right now: look again later
            time.sleep(5)
            stale &= set(key_pids(maps[name]))
        assert not stale, f"{name} still holds entries of exited processes {sorted(stale)}"
    metrics = d.metrics()
    rc, _ = d.stop()
    assert rc == 0
    # Every collection the churn made, its own and its children's, is counted for it:
    # exited processes' figures are folded per service, not dropped.
    churned = sum(float(v) for v in re.findall(
        r'^python_gc_collections_total\{service_name="churn",generation="\d"\} (\S+)$',
        metrics, re.M))
    assert churned == summary["collections"], (churned, summary, [
        l for l in metrics.splitlines() if l.startswith(("pyrometer_map_full", "pyrometer_disc",
                                                          "pyrometer_gc_lost", "pyrometer_gc_un",
                                                          'python_gc_collections_total{service_name="unknown"'))],
                                               d.log()[-3000:])
    for l in longs:
        l.stop()
