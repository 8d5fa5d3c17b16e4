"""pyrometer record --mode calls: exact call counts from the function probes, attached per
process, on every zoo interpreter that has them; clear refusals where they do not fire."""
import re
import subprocess
import time

import pytest

from calls_run import EXPECTED, GENERATORS_CREATED, Traced, table
from conftest import PYROMETER, ZOO, workload_script
from pprof_raw import RawProfile

@pytest.mark.parametrize("name", ["py39", "py310", "py315"])
def test_exact_counts_and_times(name, workload):
    w = workload(ZOO[name], workload_script("calls_exact.py"))
    t = Traced(w)
    rows = table(t.out)
    creation = GENERATORS_CREATED if name not in ("py39", "py310") else 0
    expected = {**EXPECTED, "gen": EXPECTED["gen"] + creation}
    for fn, n in expected.items():
        assert fn in rows, f"{fn} missing:\n{t.out}"
        assert rows[fn][0] == n, f"{fn}: {rows[fn][0]} calls, expected {n}\n{t.out}"
    for fn, (calls, incl, excl, p50, p99) in rows.items():
        if incl == "n/a":
            continue
        assert float(incl) >= float(excl) - 1e-6, f"{fn}: inclusive < exclusive"
    # the root of the traced calls took no longer than the traced wall time
    assert float(rows["main"][1]) / 1e3 <= t.workload_s + 0.05
    assert float(rows["main"][1]) >= float(rows["fib"][1])
    m = re.search(r"(\d+) entries, (\d+) returns; (\d+) returns without an entry, (\d+) re-paired",
                  t.stderr)
    assert m, t.stderr
    # everything ran inside the window: entries and returns pair up but for the generator
    # creations, each re-paired once at its caller's return
    entries, returns, unmatched, repaired = map(int, m.groups())
    assert entries - returns == creation and unmatched == 0 and repaired == creation, t.stderr


@pytest.mark.parametrize("name", ["py39", "py310", "py311", "py315"])
@pytest.mark.parametrize("ending", ["stays", "exit"])
def test_counts_stay_exact_through_evictions_and_exits(name, ending, workload):
    """Per-thread totals are kept in the kernel and moved to the shared maps when their slot
    is needed (200 functions, 32 slots), when a thread exits, and when tracing ends with the
    process still running ("stays") or after it exited ("exit")."""
    w = workload(ZOO[name], workload_script("calls_many.py"), args=[ending])
    started = time.monotonic()
    t = Traced(w, "--format", "folded", duration="6" if ending == "stays" else "30")
    elapsed = time.monotonic() - started
    counts, paths = {}, {}
    for line in t.out.splitlines():
        stack, n = line.rsplit(" ", 1)
        frames = [re.sub(r" \(.*\)$", "", f) for f in stack.split(";")]
        counts[frames[-1]] = counts.get(frames[-1], 0) + int(n)
        paths[tuple(frames[-2:])] = paths.get(tuple(frames[-2:]), 0) + int(n)
    has_paths = name != "py311"  # 3.11: counts from returns alone, no call paths
    for i in range(200):
        assert counts.get(f"f{i}") == 5, f"f{i}: {counts.get(f'f{i}')} calls, expected 5"
        assert not has_paths or paths.get(("sweep", f"f{i}")) == 5
    assert counts.get("tick") == 4 * 300
    assert not has_paths or paths.get(("worker", "tick")) == 4 * 300
    assert counts.get("worker") == 4 and counts.get("sweep") == 1
    if ending == "exit":  # record stopped because the process was gone, not at -d
        assert elapsed < 20, f"record ran {elapsed:.1f} s after its only process exited"


def test_311_counts_only(workload):
    w = workload(ZOO["py311"], workload_script("calls_exact.py"))
    t = Traced(w)
    rows = table(t.out)
    for fn, n in EXPECTED.items():
        if fn == "main":
            continue  # main's return comes after "done" is printed... it is the same
        assert rows[fn][0] == n, f"{fn}: {rows[fn][0]} calls, expected {n}\n{t.out}"
    assert all(r[1] == "n/a" for r in rows.values())
    assert "latency is not available" in t.out
    assert "call counts only" in t.stderr


@pytest.mark.parametrize("name,why", [
    ("py313", "function__entry/function__return probes absent in this build"),
    ("py314", "function__entry/function__return probes absent in this build"),
    ("py311-nousdt", "built without USDT probes (no .note.stapsdt)"),
])
def test_unavailable_is_said(name, why, workload):
    w = workload(ZOO[name])
    r = subprocess.run([PYROMETER, "record", "--mode", "calls", "-p", str(w.pid), "-d", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stdout == "", r.stdout
    assert f"pid {w.pid} (CPython {ZOO[name]['version']}): function tracing unavailable: " \
        f"{why}" in r.stderr, r.stderr


def test_jit_is_refused(workload):
    w = workload(ZOO["py315"], env={"PYTHON_JIT": "1"})
    r = subprocess.run([PYROMETER, "record", "--mode", "calls", "-p", str(w.pid), "-d", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "JIT" in r.stderr, r.stderr


def test_duration_is_required_and_capped(workload):
    w = workload(ZOO["py315"])
    r = subprocess.run([PYROMETER, "record", "--mode", "calls", "-p", str(w.pid)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "record: --mode calls needs -d SECONDS" in r.stderr, r.stderr
    r = subprocess.run([PYROMETER, "record", "--mode", "calls", "-p", str(w.pid), "-d", "100",
                        "--max-duration", "10"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "record: -d 100 is longer than --max-duration 10" in r.stderr, \
        r.stderr


def test_bench_floor_names_its_choices():
    r = subprocess.run([PYROMETER, "record", "--mode", "calls", "-p", "1", "-d", "1",
                        "--floor=fast"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--floor must be count or timer, not 'fast'" in r.stderr


def test_per_pid_attach_leaves_other_processes_alone(workload):
    """A second process of the same interpreter is not traced (and does not trap)."""
    w = workload(ZOO["py315"], workload_script("calls_exact.py"))
    other = workload(ZOO["py315"], workload_script("calls_exact.py"))
    other.proc.stdin.write("go\n")
    other.proc.stdin.flush()
    t = Traced(w)
    assert other.proc.stdout.readline().strip() == "done"
    assert table(t.out)["fib"][0] == 1973  # the other's calls are not counted


def test_pprof_and_folded(tmp_path, workload):
    w = workload(ZOO["py315"], workload_script("calls_exact.py"))
    out = tmp_path / "calls.pb.gz"
    Traced(w, "-o", str(out))
    prof = RawProfile(str(out))
    text = subprocess.run(["go", "tool", "pprof", "-raw", str(out)], capture_output=True,
                          text=True).stdout
    assert "calls/count wall/nanoseconds" in text
    assert sum(c for c, names, _ in prof.samples if names and names[0] == "fib") == 1973
    assert sum(c for c, names, _ in prof.samples if names and names[0] == "helper") == 1000
    assert abs(prof.time_unix - time.time()) < 120, "time_nanos is wall-clock time"
    w2 = workload(ZOO["py39"], workload_script("calls_exact.py"))
    folded = tmp_path / "calls.folded"
    Traced(w2, "-o", str(folded))
    lines = folded.read_text().splitlines()
    helper = [l for l in lines if re.search(r";helper \(\S*\) \d+$", l) or
              re.search(r";helper \([^)]*\) \d+$", l)]
    assert helper and all("main" in l and "loop" in l for l in helper)
    assert sum(int(l.rsplit(" ", 1)[1]) for l in helper) == 1000
