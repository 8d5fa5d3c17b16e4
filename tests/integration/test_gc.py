"""`pyrometer gc` on every zoo interpreter with the probes: collection counts are compared
exactly with the interpreter's own gc.get_stats(), pause times with its gc.callbacks."""
import collections
import json
import subprocess
import time

import pytest

from conftest import ZOO, GcTrace, run_gc_workload, run_pyrometer, wait_attached, workload_script

WITH_PROBES = ["py39", "py310", "py311", "py311-embedded", "py312", "py313", "py314", "py314t",
               "py315"]


@pytest.fixture
def gctrace():
    started = []

    def start(*args):
        t = GcTrace(*(args if "-p" in args else ("-a",) + args))
        started.append(t)
        return t

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()


def run_gc_workload_alone(name, workload, gctrace):
    """gc_heavy.py traced with -p at threshold 0: every pause of this process only, as an
    event (-a would trace every Python on the host: 160 other pids in 2 s)."""
    w = workload(ZOO[name], workload_script("gc_heavy.py"), ["2"])
    trace = gctrace("-p", str(w.pid), "--threshold", "0")
    # a -p process is tracked before "ready"
    assert any(e["event"] == "tracking" and e["pid"] == w.pid for e in trace.events), \
        trace.events
    w.proc.stdin.write("go\n")
    w.proc.stdin.flush()
    report = json.loads(w.proc.stdout.readline())
    w.proc.wait(timeout=30)
    events = trace.stop()  # ends by itself when its only process exits
    return w, report, events


@pytest.mark.parametrize("name", WITH_PROBES)
def test_gc_counts_are_exact(name, workload, gctrace):
    w, report, events = run_gc_workload(name, workload, gctrace, threshold="0")
    summary = {e["generation"]: e for e in events
               if e["event"] == "summary" and e["pid"] == w.pid}
    pauses = [e for e in events if e["event"] == "pause" and e["pid"] == w.pid]
    stats = report["stats"]
    assert stats[0]["collections"] > 100, "the workload should collect often"
    # (a generation that never collected has no summary: free-threaded 3.14t collects the
    # older generations only when asked)
    for gen in (0, 1):
        assert summary.get(gen, {}).get("count", 0) == stats[gen]["collections"], gen
    # threshold 0: every collection is also an event, with its start time
    assert len(pauses) == sum(s["count"] for s in summary.values())
    before = [p for p in pauses if p["start_ns"] < report["at_ns"]]
    after = [p for p in pauses if p["start_ns"] >= report["at_ns"]]
    for gen in (0, 1, 2):
        assert sum(p["generation"] == gen for p in before) == stats[gen]["collections"]
    # what remains is the interpreter's shutdown: full collections only
    assert {p["generation"] for p in after} <= {2}
    assert summary[2]["count"] == stats[2]["collections"] + len(after)
    # free-threaded 3.14t collects the older generations only when asked
    assert stats[1]["collections"] or ZOO[name]["version"].endswith("t"), stats
    for gen in (0, 1):
        if not stats[gen]["collections"]:
            continue
        s = summary[gen]
        assert s["count"] and s["max_ns"] <= s["total_ns"]
        assert 0 < s["p50_ns"] <= s["p99_ns"] <= s["p999_ns"] <= s["max_ns"]
        assert s["collected"] == stats[gen]["collected"] + stats[gen]["uncollectable"]


@pytest.mark.parametrize("name", WITH_PROBES)
def test_gc_pause_times_agree_with_gc_callbacks(name, workload, gctrace):
    """gc.callbacks run just outside the probes (start callback, gc__start, collection,
    gc__done, stop callback), on the same clock (CLOCK_MONOTONIC): every pause pyrometer
    measures lies inside the one the callbacks measured. Paired collection by collection,
    over exactly the collections the callbacks saw (start-up collections, which a hog can
    preempt for a whole slice, made pyrometer's total exceed the callbacks' by 6 % under
    load). Below, the callbacks' own dispatch cost and a uprobe trap (about 5.6 us each here)
    are the gap: the medians (robust to a preempted callback) differed by 8-12 us on 3.9-3.14
    and 12-17 us on 3.15, allowed 25 us or a quarter."""
    w, report, events = run_gc_workload_alone(name, workload, gctrace)
    accounting = next(e for e in events if e["event"] == "accounting")
    assert accounting["events_lost"] == 0 and accounting["pauses_lost"] == 0, accounting
    pauses = sorted((e for e in events if e["event"] == "pause" and
                     report["from_ns"] <= e["start_ns"] < report["at_ns"]),
                    key=lambda e: e["start_ns"])
    for gen in (0, 1, 2):
        mine = [p["duration_ns"] for p in pauses if p["generation"] == gen]
        theirs = report["callback_each_ns"].get(str(gen), [])
        starts = [p["start_ns"] for p in pauses if p["generation"] == gen]
        assert len(mine) == len(theirs), (
            f"gen {gen}: {len(mine)} pauses, {len(theirs)} callbacks; first pause "
            f"{(starts[0] - report['from_ns']) / 1e3 if starts else None} us after the "
            f"callbacks began, last {(report['at_ns'] - starts[-1]) / 1e3 if starts else None}"
            f" us before they ended", accounting)
        outside = [(i, m, t) for i, (m, t) in enumerate(zip(mine, theirs)) if m >= t]
        assert not outside, f"gen {gen}: pauses longer than their callbacks: {outside[:5]}"
    for gen in (0, 1):
        # Collection by collection, the callbacks' pause less ours: their dispatch and the
        # traps, unless a slice was lost in their part (gen 1 collections last milliseconds,
        # a scheduler slice beside CPU hogs: that moved the callbacks' own median from 2.3 to
        # 6.0 ms once). The median gap is robust to such a collection; the README promises
        # 25 us or a quarter of the callbacks' median.
        if str(gen) not in report["callback_each_ns"] and ZOO[name]["version"].endswith("t"):
            continue  # 3.14t: no automatic generation-1 collection
        mine = [p["duration_ns"] for p in pauses if p["generation"] == gen]
        theirs = report["callback_each_ns"][str(gen)]
        gaps = sorted(t - m for m, t in zip(mine, theirs))
        gap, median = gaps[len(gaps) // 2], report["callback_median_ns"][str(gen)]
        print(f"gen {gen}: median gap {gap} ns, callbacks' median {median} ns")
        assert gap <= max(25_000, median / 4), \
            f"gen {gen}: median gap {gap} ns to the callbacks' pauses (median {median} ns)"


def assert_rooted_in_loop(w, pauses):
    """Slow-pause stacks are the allocating code's: the workload's own loop lines (start-up
    ones are in importlib), and hold only this process's code."""
    src = workload_script("gc_heavy.py").splitlines()
    loop_lines = {i + 1 for i, l in enumerate(src) if "Node()" in l and "def" not in l}
    in_loop = [p for p in pauses if p["stack"] and
               p["stack"][-1].startswith("<module> (" + w.script_in_root) and
               int(p["stack"][-1].rsplit(":", 1)[1].rstrip(")")) in loop_lines]
    # Another process's frames would show as not being code objects here. (3.11 stacks in
    # importlib show a few such frames of their own: those are not loop stacks.)
    foreign = [p["stack"] for p in in_loop
               if any(f.startswith("[not a code object]") for f in p["stack"])]
    assert not foreign, (len(foreign), foreign[:3])
    # on failure, say where the other pauses were rooted
    kept = {id(p) for p in in_loop}
    others = collections.Counter(p["stack"][-1] if p["stack"] else "[none]"
                                 for p in pauses if id(p) not in kept)
    assert len(in_loop) >= 0.9 * len(pauses), (len(in_loop), len(pauses),
                                                others.most_common(5))


MIXED_PAUSES = """
import gc, sys
keep = [[i] for i in range(1_000_000)]  # full collections of tens of ms
print("ready", flush=True)
sys.stdin.readline()
for _ in range(3):
    gc.collect()
junk = [[] for _ in range(200_000)]  # young collections of well under a millisecond
print("done", flush=True)
"""


def test_the_default_threshold_prints_pauses_of_10_ms_and_up(workload, gctrace):
    """Without --threshold (README: 10 ms) the full collections are printed, with their stack
    whole, and none of the short young ones, which the summary still counts."""
    w = workload(ZOO["py311"], MIXED_PAUSES)
    trace = gctrace("-p", str(w.pid))
    w.proc.stdin.write("go\n")
    w.proc.stdin.flush()
    assert w.proc.stdout.readline().strip() == "done"
    w.proc.stdin.close()
    w.proc.wait(timeout=30)
    events = trace.stop()
    pauses = [e for e in events if e["event"] == "pause"]
    young = sum(e["count"] for e in events if e["event"] == "summary" and e["generation"] == 0)
    assert len(pauses) >= 3 and young > 100, (pauses, young)
    assert all(p["duration_ns"] >= 10_000_000 for p in pauses), pauses
    # the three gc.collect() calls, in the script's frame; the others (if any) are the
    # interpreter's shutdown, with no Python frame left
    in_script = [p for p in pauses if p["stack"]]
    assert len(in_script) == 3, [(p["stack_truncated"], p["stack"]) for p in pauses]
    assert all(p["stack"][0].startswith(f"<module> ({w.script_in_root}:") and
               p["stack_truncated"] is False for p in in_script), in_script


def test_slow_pauses_come_with_their_stack(workload, gctrace):
    """Threshold 0: every collection of the workload is an event with its stack. Only the
    workload is traced (-a would trace every Python on the host: 160 other pids in 2 s), and
    the accounting is exact: events received plus events lost equal the pauses counted, and
    none is lost."""
    w, _, events = run_gc_workload_alone("py311", workload, gctrace)
    pauses = [e for e in events if e["event"] == "pause"]
    counted = sum(e["count"] for e in events if e["event"] == "summary")
    accounting = next(e for e in events if e["event"] == "accounting")
    print(accounting)
    assert {e["pid"] for e in pauses} == {w.pid}
    assert accounting["events"] == len(pauses)
    assert len(pauses) + accounting["events_lost"] == counted, (accounting, counted)
    assert accounting["events_lost"] == 0 and accounting["pauses_lost"] == 0, accounting
    for p in pauses:
        assert p["tid"] == w.pid and p["duration_ns"] > 0 and p["generation"] in (0, 1, 2)
    assert_rooted_in_loop(w, pauses)


def test_stacks_are_named_after_their_code_is_freed(workload, gctrace):
    """GC events are read and symbolized behind capture (every 200 ms, later under load):
    a code object freed and its memory reused in between must not turn the stacks captured
    while it ran into "[not a code object]" (under load a process's last half second of
    pauses came out so: the CI failure of test_slow_pauses_come_with_their_stack)."""
    trace = gctrace("--threshold", "0")
    warm = workload(ZOO["py311"])
    wait_attached(trace, warm)
    w = workload(ZOO["py311"], workload_script("gc_freed_code.py"), ["1"])
    w.proc.stdin.write("go\n")
    w.proc.stdin.flush()
    assert w.proc.stdout.readline().strip() == "done"
    time.sleep(1)  # two reads of the ring buffer after the free
    events = trace.stop()
    pauses = [e for e in events if e["event"] == "pause" and e["pid"] == w.pid]
    in_churn = [p for p in pauses if p["stack"] and p["stack"][0].startswith("churn")]
    assert len(in_churn) > 100, "the workload should collect often inside churn()"
    # (3.11 start-up stacks in importlib show a few such frames of their own)
    unnamed = [p["stack"] for p in pauses
               if any(f.startswith("[not a code object]") for f in p["stack"]) and
               not any("<frozen importlib" in f for f in p["stack"])]
    assert not unnamed, (len(unnamed), len(pauses), unnamed[:3])


def test_no_usdt_build_is_reported_unavailable(workload, gctrace):
    trace = gctrace()
    w = workload(ZOO["py311-nousdt"])
    e = trace.wait_for(lambda e: e["event"] == "unavailable" and e["pid"] == w.pid)
    assert "USDT" in e["reason"]
    events = trace.stop()
    assert not [e for e in events if e["event"] == "summary" and e["pid"] == w.pid]


def test_gc_refuses_a_no_usdt_target(workload):
    w = workload(ZOO["py311-nousdt"])
    r = run_pyrometer("gc", "-p", str(w.pid), "-d", "1", check=False)
    assert r.returncode == 1
    version = ZOO["py311-nousdt"]["version"]
    assert (f"gc: pid {w.pid} (CPython {version}): GC tracing unavailable: built without USDT "
            "probes (no .note.stapsdt)") in r.stderr, r.stderr


RUN_AND_EXIT = """
import gc, os, sys, time
time.sleep(0.3)
for _ in range(int(sys.argv[1])):
    gc.collect(2)
print(sum(s["collections"] for s in gc.get_stats()), flush=True)
os._exit(0)  # no finalization collections: the line above is the whole truth
"""


def spawn_with_pid(pid, argv):
    """Starts argv as the given pid (kernel.ns_last_pid, as CRIU does); None if another
    fork took it first."""
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    return p if p.pid == pid else (p.wait(), None)[1]


def test_a_reused_pid_is_another_process_in_the_summary(gctrace, tmp_path):
    """Two processes that had the same pid one after the other are two sets of rows (keyed
    by pid and start time), each with its own exact counts, never one merged row."""
    script = tmp_path / "run.py"
    script.write_text(RUN_AND_EXIT)
    trace = gctrace("--threshold", "100000")
    first = subprocess.Popen(["/usr/bin/python3.11", str(script), "3"], stdout=subprocess.PIPE,
                             text=True)
    counts = [int(first.stdout.readline())]
    first.wait()
    pid = first.pid
    time.sleep(1)  # its exit is read
    for _ in range(20):
        second = spawn_with_pid(pid, ["/usr/bin/python3.11", str(script), "5"])
        if second:
            break
        time.sleep(0.1)
    assert second, f"could not get pid {pid} again"
    counts.append(int(second.stdout.readline()))
    second.wait()
    time.sleep(1)
    events = trace.stop()
    rows = [e for e in events if e["event"] == "summary" and e["pid"] == pid]
    by_start = collections.defaultdict(int)
    for r in rows:
        by_start[r.get("start_time", 0)] += r["count"]  # (the old format had none)
    assert sorted(by_start.items()) and [n for _, n in sorted(by_start.items())] == counts, rows
