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
import uuid

from conftest import ZOO, wait_for, workload_script
from daemon import Daemon, cpu_profiles, daemon_maps, key_pids, perf_fds

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

RATE, TOTAL = 200, 12_000  # 60 s on an idle machine (README)


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


def test_churn_leaves_no_trace_and_keeps_profiling(tmp_path, workload):
    services = [f"long-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    longs = [workload(ZOO["py311"], LONG, env={"PYROMETER_SERVICE": s}) for s in services]
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store, "--interval", "2")
    for s in services:  # both tracked: the baseline below is the daemon's steady state
        wait_for(lambda: f'\npython_gc_tracing_available{{service_name="{s}"}} 1\n'
                 in d.metrics(), 30, f"GC tracing of {s}")
    maps = daemon_maps(d.proc.pid)
    assert {"procs", "gc_stats", "gc_hist"} <= set(maps), maps
    base_perf = perf_fds(d.proc.pid)
    churn = workload(ZOO["py311"], workload_script("churn.py"), [str(RATE), str(TOTAL)],
                     env={"PYROMETER_SERVICE": "churn"})
    # Children inherit tracking from their parent: churn only once the parent is tracked.
    wait_for(lambda: '\npython_gc_tracing_available{service_name="churn"} 1\n' in d.metrics(),
             30, lambda: f"tracking of the churn parent: {d.log()}")
    churn.proc.stdin.write("go\n")
    churn.proc.stdin.flush()
    summary = json.loads(churn.proc.stdout.readline())
    # on a loaded machine it makes fewer than RATE a second, and takes longer
    assert summary["forked"] + summary["execed"] == TOTAL, summary
    churn.stop()
    assert d.proc.poll() is None, "the daemon died under churn:\n" + d.log()
    # The long-lived processes are still profiled after the churn.
    profiles = lambda s: len(cpu_profiles(glob.glob(f"{store}/{s}/*.pb.gz")))
    before = {s: profiles(s) for s in services}
    for s in services:
        wait_for(lambda: profiles(s) > before[s], 30, f"a new profile of {s}")
    # Back to baseline in the kernel: CPU sampling's perf events (the GC uprobes are the
    # installed interpreter's, attached from the start; test_production covers a binary
    # first seen during churn).
    wait_for(lambda: perf_fds(d.proc.pid) == base_perf, 30,
             lambda: f"{base_perf} perf fds (held {perf_fds(d.proc.pid)})")
    # exits are retired 3 s after they happen, those never named within the 5 s sweep
    for name in ("procs", "gc_stats", "gc_hist"):
        wait_for(lambda: not {p for p in key_pids(maps[name]) if not alive(p)}, 30,
                 lambda: f"{name} without entries of exited processes "
                 f"({sorted(p for p in key_pids(maps[name]) if not alive(p))[:20]})")
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
