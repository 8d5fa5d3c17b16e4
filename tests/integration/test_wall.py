"""`pyrometer record --mode wall`: CPU samples plus every stretch a thread spends off the CPU,
with the stack it left with and why ([gil] or [off-cpu]), checked against what the
workloads (workloads/wall.py) measured of themselves, read back through go tool pprof."""
import json
import re
import subprocess
import time
import uuid

import pytest

from collector import Collector, push_profiles
from conftest import ZOO, wait_for, workload_script
from daemon import Daemon
from pprof_raw import RawProfile
from record_run import folded, record_held

# the three: 3.11, 3.14, and one more (3.9: the oldest layout, heap frames)
WALL_INTERPRETERS = ["py310", "py311", "py312", "py314", "py314t", "py39"]
SHARE_TOLERANCE_PP = 6.0
GIL_SHARE, GIL_TOLERANCE_PP = 50.0, 12.0


def wall_run(name, workload, tmp_path, scenario, out_name="wall.pb.gz", seconds=3):
    w = workload(ZOO[name], workload_script("wall.py"), [str(seconds), scenario, "hold"])
    out = tmp_path / out_name
    rc, stderr = record_held(w, "--mode", "wall", "-p", str(w.pid), "-F", "199",
                             "-d", str(seconds + 1), "-o", str(out))
    assert rc == 0, stderr
    measured = json.loads(w.proc.stdout.readline())
    lost = re.search(r"off the CPU: [\d.]+ s waiting for the GIL, [\d.]+ s otherwise; "
                     r"(\d+) stretches lost", stderr)
    assert lost and lost.group(1) == "0", stderr
    return w, measured, out, stderr


def thread_wall(prof, tid):
    """[(frames leaf first, wall ns)] of one thread."""
    return [(stack, ns) for (_, stack, labels), ns in zip(prof.samples, prof.second)
            if labels.get("thread_id") == str(tid)]


def weight(stacks, pred):
    return sum(ns for stack, ns in stacks if pred(stack))


@pytest.mark.parametrize("name", WALL_INTERPRETERS)
def test_compute_and_sleep_split_the_wall_time_as_measured(name, workload, tmp_path):
    w, measured, out, stderr = wall_run(name, workload, tmp_path, "sleep")
    prof = RawProfile(str(out))
    assert prof.samples, stderr
    main = thread_wall(prof, w.pid)
    in_sleep = weight(main, lambda s: "sleep_slice" in s)
    in_compute = weight(main, lambda s: "compute_slice" in s)
    got = 100 * in_sleep / (in_sleep + in_compute)
    want = 100 * measured["sleep"] / (measured["sleep"] + measured["compute"])
    assert abs(got - want) <= SHARE_TOLERANCE_PP, f"sleep {got:.1f}% of wall, {want:.1f}% measured"
    assert abs(in_sleep / 1e9 - measured["sleep"]) <= 0.1 * measured["sleep"], (in_sleep, measured)
    # sleeping is off the CPU, never waiting for the GIL (nothing else wants it); the rest
    # is the CPU time.sleep itself takes, sampled (8 samples, 2.6 %, in one run on 3.14)
    assert weight(main, lambda s: "sleep_slice" in s and s[0] == "[off-cpu]") \
        >= 0.9 * in_sleep
    assert weight(main, lambda s: s[0] == "[gil]") == 0


# where the GIL lies differs by version (3.9-3.11: _PyRuntime; 3.12+: the interpreter)
@pytest.mark.parametrize("name", ["py39", "py310", "py311", "py312", "py313", "py314", "py315"])
def test_two_threads_fighting_for_the_gil_wait_half_their_time(name, workload, tmp_path):
    w, measured, out, stderr = wall_run(name, workload, tmp_path, "gil")
    prof = RawProfile(str(out))
    for tid in measured["tids"]:
        stacks = [(s, ns) for s, ns in thread_wall(prof, tid) if "contend" in s]
        total = weight(stacks, lambda s: True)
        gil = weight(stacks, lambda s: s[0] == "[gil]")
        assert total > 2e9, (tid, total, stderr)  # the thread's 3 s, nearly all of it
        assert abs(100 * gil / total - GIL_SHARE) <= GIL_TOLERANCE_PP, \
            f"thread {tid}: [gil] {100 * gil / total:.1f}% of its wall time"
        # the wait is charged to the Python frame that wanted the GIL back
        assert all(s[1] == "contend" for s, ns in stacks if s[0] == "[gil]")


def test_free_threaded_threads_never_wait_for_a_gil(workload, tmp_path):
    """3.14t has no GIL: the two threads that fight for it on other builds run side by side;
    their wall time is theirs, each attributed to its own thread, and none of it is [gil]."""
    w, measured, out, stderr = wall_run("py314t", workload, tmp_path, "gil")
    prof = RawProfile(str(out))
    for tid in measured["tids"]:
        stacks = [(s, ns) for s, ns in thread_wall(prof, tid) if "contend" in s]
        assert weight(stacks, lambda s: True) > 2e9, (tid, stderr)  # its 3 s, nearly all
        assert weight(stacks, lambda s: s[0] == "[gil]") == 0, (tid, stderr)


@pytest.mark.parametrize("name", WALL_INTERPRETERS)
def test_a_thread_blocked_on_a_socket_is_off_cpu_in_its_function(name, workload, tmp_path):
    w, measured, out, stderr = wall_run(name, workload, tmp_path, "socket")
    prof = RawProfile(str(out))
    waiter = thread_wall(prof, measured["tid"])
    blocked = weight(waiter, lambda s: s[0] == "[off-cpu]" and s[1] == "wait_on_socket")
    # recv started before the recording (the thread starts with the scenario, at "go"),
    # so the stretch is a little shorter than the thread measured
    assert abs(blocked / 1e9 - measured["recv"]) <= 0.1 * measured["recv"], (blocked, measured)
    assert weight(waiter, lambda s: s[0] == "[gil]") <= 0.01 * blocked


def test_folded_wall_values_are_microseconds(workload, tmp_path):
    w, measured, out, stderr = wall_run("py311", workload, tmp_path, "sleep", "wall.folded")
    lines = folded(str(out))
    in_sleep_us = sum(c for frames, c in lines if any(f.startswith("sleep_slice ") for f in frames))
    assert abs(in_sleep_us / 1e6 - measured["sleep"]) <= 0.1 * measured["sleep"], \
        (in_sleep_us, measured)
    assert all(frames[-1] != "[gil]" for frames, _ in lines
               if any(f.startswith("sleep_slice ") for f in frames))


def test_the_daemon_ships_off_cpu_profiles_and_gil_metrics(workload, tmp_path):
    """The daemon as deployed (started first, off-cpu on by default) and two threads that
    fight for the GIL started after it: an off_cpu profile reaches Pyroscope (push,
    __name__=off_cpu) and the store, with [gil] on contend(); /metrics counts the GIL wait
    per service and passes promtool."""
    service = f"walltest-{uuid.uuid4().hex[:8]}"
    store = tmp_path / "store"
    collector = Collector()
    try:
        d = Daemon(tmp_path, "--pyroscope", collector.url, "--store-enabled", "true",
                   "--store", str(store))
        w = workload(ZOO["py311"], workload_script("wall.py"), ["6", "gil", "hold"],
                     env={"PYROMETER_SERVICE": service})
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        spent = json.loads(w.proc.stdout.readline())  # the threads are done

        def off_cpu_pushes():
            return [(labels, raw) for req in collector.accepted()
                    for labels, _, raw in push_profiles(req.body)
                    if labels.get("service_name") == service
                    and labels.get("__name__") == "off_cpu"]
        wait_for(lambda: len(off_cpu_pushes()) >= 3, 30, "off_cpu pushes")

        def gil_metric():
            m = re.search(rf'^python_gil_wait_seconds_total{{service_name="{service}"}} (\S+)$',
                          d.metrics(), re.M)
            return float(m.group(1)) if m else None
        # the threads are done: their last waits are counted once the figure stops moving
        # (the metrics are published once a second)
        last, end = gil_metric(), time.monotonic() + 20
        while time.monotonic() < end:
            time.sleep(1.2)
            now = gil_metric()
            if now is not None and now == last:
                break
            last = now
        metrics = d.metrics()
        d.stop()  # the rest of the interval is pushed at SIGTERM
    finally:
        collector.down()
    gil = re.search(rf'^python_gil_wait_seconds_total{{service_name="{service}"}} (\S+)$',
                    metrics, re.M)
    other = re.search(rf'^python_off_cpu_seconds_total{{service_name="{service}"}} (\S+)$',
                      metrics, re.M)
    assert gil and other, metrics
    # The threads' own account: blocked is what they waited for the GIL; a stretch off the
    # CPU ends when the thread runs again, so each wake-up's wait for a CPU may be in it too.
    blocked, runnable = spent["blocked_ns"] / 1e9, spent["runnable_ns"] / 1e9
    waited = float(gil.group(1))
    assert 0.9 * blocked <= waited <= 1.1 * (blocked + runnable), (waited, spent)
    r = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    gil_ns = 0
    for i, (labels, raw) in enumerate(off_cpu_pushes()):
        path = tmp_path / f"pushed-{i}.pb.gz"
        path.write_bytes(raw)
        prof = RawProfile(str(path))  # go tool pprof reads it
        gil_ns += sum(ns for (_, stack, _), ns in zip(prof.samples, prof.second)
                      if stack[0] == "[gil]" and stack[1] == "contend")
    # every wait pushed once: the profiles' [gil] time is the metric's (5 % for the
    # rounding of each stretch), neither lost nor counted twice
    assert abs(gil_ns / 1e9 - waited) <= 0.05 * waited, (gil_ns, waited)
    stored = sorted((store / service).glob("*.off_cpu.pb.gz"))
    assert stored, sorted(store.rglob("*"))
    types = subprocess.run(["go", "tool", "pprof", "-raw", str(stored[0])], capture_output=True,
                           text=True, timeout=60).stdout
    assert "samples/count off_cpu/nanoseconds" in types, types[:300]
