"""The daemon's call windows (calls-window): every Python process with function probes is
traced for a few seconds on a schedule, per process, within a CPU budget, and each window
becomes a calls profile per service in the store, read here by `go tool pprof`."""
import glob
import json
import math
import os
import re
import subprocess
import time
import uuid

from calls_run import EXPECTED
from conftest import ZOO, wait_for, workload_script
from daemon import KEPT_CAPS, Daemon, caps_of
from pprof_raw import RawProfile

TICKER = """
import sys, time
def tick():
    return 1
print("ready", flush=True)
end = time.monotonic() + 600
while time.monotonic() < end:
    for _ in range(100):
        tick()
    time.sleep(0.01)
"""

# TICKER that counts for itself: the batches of 100 calls it made while the semaphores of
# its function__entry and function__return sites (which the kernel raises while a uprobe is
# attached to the site; a call is counted from both) were all up, all down, or neither:
# changing during the batch, or one probe attached before the other. It reads the
# semaphores' addresses from stdin (the test finds them from outside: a chroot may have no
# /proc), and on the next line prints its counts and exits.
COUNTING_TICKER = """
import ctypes, json, sys, threading, time
print("ready", flush=True)
sems = [ctypes.c_ushort.from_address(int(a, 0)) for a in sys.stdin.readline().split()]
def tick():
    return 1
def up():
    return [bool(s.value) for s in sems]
counts = {"traced": 0, "untraced": 0, "changing": 0}
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
while not stop.is_set():
    seen = up()
    for _ in range(100):
        tick()
    seen += up()
    counts["traced" if all(seen) else "untraced" if not any(seen) else "changing"] += 100
    time.sleep(0.01)
print(json.dumps(counts), flush=True)
"""


def semaphore_address(w, probe):
    """Where w's interpreter keeps the probe's semaphore: its link-time address (readelf)
    moved by where the executable is loaded (w's maps, read from outside)."""
    binary = os.path.join(w.entry["root"], w.entry["argv"][0].lstrip("/"))
    notes = subprocess.run(["readelf", "-n", binary], capture_output=True, text=True,
                           check=True).stdout
    sem = int(re.search(rf"Name: {probe}\n\s+Location: \S+, Base: \S+, Semaphore: "
                        r"(0x[0-9a-f]+)", notes).group(1), 16)
    loads = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True,
                           check=True).stdout
    first_load = int(re.search(r"^\s+LOAD\s+\S+\s+(0x[0-9a-f]+)", loads, re.M).group(1), 16)
    name = w.entry["argv"][0]
    base = min(int(l.split("-")[0], 16) for l in open(f"/proc/{w.pid}/maps")
               if l.split()[-1].endswith(name) and int(l.split()[2], 16) == 0)
    return base - first_load + sem


def service():
    return f"svc-{uuid.uuid4().hex[:8]}"


def calls_files(store, svc):
    return sorted(glob.glob(os.path.join(store, svc, "*.calls.pb.gz")))


def counts_by_leaf(prof):
    counts = {}
    for n, names, _ in prof.samples:
        if names:
            counts[names[0]] = counts.get(names[0], 0) + n
    return counts


def wait_metric(d, name, pred, timeout=15):
    """The daemon publishes its metrics once a second: wait for a value that satisfies pred."""
    return wait_for(lambda: (v := d.metric(name)) is not None and pred(v) and [v], timeout,
                    lambda: f"{name} as wanted (it is {d.metric(name)})\n{d.log()}")[0]


def uprobes_of(pid):
    out = subprocess.run(["bpftool", "perf", "show"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return [l for l in out.splitlines() if l.startswith(f"pid {pid} ") and "uprobe" in l]


def test_a_window_counts_exactly_and_goes_to_the_store(tmp_path, workload):
    svcs = {name: service() for name in ("py315", "py311", "py313")}
    ws = {name: workload(ZOO[name], workload_script("calls_exact.py"),
                         env={"PYROMETER_SERVICE": svc}) for name, svc in svcs.items()}
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store, "--calls-window", "3", "--calls-every", "4")
    # CAP_SYS_ADMIN (21) is kept too, with windows on (README, Privileges)
    assert caps_of(d.proc.pid, "CapEff") == KEPT_CAPS | (1 << 21)
    before = len(uprobes_of(d.proc.pid))
    d.wait_log("call window: tracing the calls of")
    # The probes are armed: the workloads make their calls inside the window.
    for w in ws.values():
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        assert w.proc.stdout.readline().strip() == "done"
    assert len(uprobes_of(d.proc.pid)) > before, "no uprobe attached during the window"
    d.wait_log("call window ended", timeout=15)
    # Detached at the window's end: the traced processes no longer trap.
    assert len(uprobes_of(d.proc.pid)) == before, "uprobes left after the window"
    wait_metric(d, "pyrometer_call_windows_total", lambda v: v == 1)
    rc, _ = d.stop()
    assert rc == 0, d.log()

    files = calls_files(store, svcs["py315"])
    assert len(files) == 1, f"{files}\n{d.log()}"
    text = subprocess.run(["go", "tool", "pprof", "-raw", files[0]], capture_output=True,
                          text=True, timeout=120).stdout
    assert "calls/count wall/nanoseconds" in text
    got = counts_by_leaf(RawProfile(files[0]))
    # A path's calls are its activations that returned: the generator's creation, whose
    # entry has no return, is not among them (the table of record --mode calls counts it).
    for fn, n in EXPECTED.items():
        assert got.get(fn) == n, f"3.15 {fn}: {got.get(fn)} calls, expected {n}\n{text}"

    files = calls_files(store, svcs["py311"])  # 3.11: counts from function__return
    assert len(files) == 1, f"{files}\n{d.log()}"
    got = counts_by_leaf(RawProfile(files[0]))
    for fn, n in EXPECTED.items():
        assert got.get(fn) == n, f"3.11 {fn}: {got.get(fn)} calls, expected {n}"

    assert calls_files(store, svcs["py313"]) == [], "3.13 has no function probes"


def test_windows_repeat_and_keep_to_the_budget(tmp_path, workload):
    svc = service()
    ticker = workload(ZOO["py315"], COUNTING_TICKER, env={"PYROMETER_SERVICE": svc})
    ticker.proc.stdin.write(f"{semaphore_address(ticker, 'function__entry')} "
                            f"{semaphore_address(ticker, 'function__return')}\n")
    ticker.proc.stdin.flush()
    ini = tmp_path / "pyrometer.ini"
    ini.write_text("calls-window = 0.5\ncalls-every = 2\ncalls-budget = 10\n")
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "-c", str(ini), "--store", store)
    deadline = time.monotonic() + 30
    while sum("call window ended" in l for l in d.lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum("call window ended" in l for l in d.lines) >= 2, d.log()
    assert d.metric("pyrometer_call_windows_deferred_total") == 0, d.log()

    # A budget no window can keep: after the next window, the following ones are left out.
    ini.write_text("calls-window = 0.5\ncalls-every = 2\ncalls-budget = 0.0001\n")
    d.hup()
    d.wait_log("configuration reloaded")
    d.wait_log("windows are left out", timeout=15)
    wait_metric(d, "pyrometer_call_windows_deferred_total", lambda v: v >= 1000)
    after = d.metric("pyrometer_call_windows_total")
    time.sleep(6)  # three more periods
    assert d.metric("pyrometer_call_windows_total") == after, d.log()
    # what a hit costs is checked against a traced process's own CPU clock below
    assert d.metric("pyrometer_call_probe_hits_total") > 0
    assert d.metric("pyrometer_call_cost_seconds_total") > 0
    ticker.proc.stdin.write("report\n")
    ticker.proc.stdin.flush()
    own = json.loads(ticker.proc.stdout.readline())  # no call after this
    rc, _ = d.stop()
    assert rc == 0, d.log()
    assert len(re.findall(r"call window ended: \d+ processes", d.log())) == after
    # one file per window that saw a call (the window SIGHUP ended may have been too short)
    files = calls_files(store, svc)
    assert after - 1 <= len(files) <= after, f"{files}\n{d.log()}"
    # every call made while the probes were attached, once: the batches the workload made
    # with both semaphores up, and at most those it saw them change during. The kernel
    # raises a semaphore a moment before it writes the breakpoint, and lowers it a moment
    # before it removes one (tens of microseconds: a copy of the text page): up to 2 batches
    # per attach or detach of a probe fall on the wrong side (seen: 200 calls of 13,600)
    counted = sum(counts_by_leaf(RawProfile(f)).get("tick", 0) for f in files)
    slack = 4 * 200 * after  # 4 attaches and detaches per window
    assert own["traced"] > 0, own
    assert own["traced"] - slack <= counted <= own["traced"] + own["changing"] + slack, \
        (counted, own, slack, d.log()[-3000:])


COSTED = """
import sys, time
def tick():
    return 1
print("ready", flush=True)
for line in sys.stdin:
    t0 = time.thread_time_ns()
    for _ in range(int(line)):
        tick()
    print(time.thread_time_ns() - t0, flush=True)
"""


def test_the_budget_counts_what_a_call_costs_the_traced_process(tmp_path, workload):
    """The budget's cost per probe hit, against what tracing costs a 3.15 process on its own
    CPU clock (the trap and the program run in the traced thread): within a factor of 2."""
    calls = 50_000  # 0.6 s of CPU traced; twice that in wall time on this VM (README)
    w = workload(ZOO["py315"], COSTED, env={"PYROMETER_SERVICE": service()})

    def cpu_ns():
        w.proc.stdin.write(f"{calls}\n")
        w.proc.stdin.flush()
        return int(w.proc.stdout.readline())

    untraced = min(cpu_ns() for _ in range(3))
    d = Daemon(tmp_path, "--store", str(tmp_path / "store"), "--calls-window", "10",
               "--calls-every", "11")
    d.wait_log("call window: tracing the calls of")
    traced = min(cpu_ns() for _ in range(2))
    assert "call window ended" not in d.log(), "the window ended mid-measure"
    d.wait_log("call window ended", timeout=20)
    # both traced runs fell inside the window: every call's entry and return were hits
    hits = wait_metric(d, "pyrometer_call_probe_hits_total", lambda v: v >= 4 * calls)
    per_hit = d.metric("pyrometer_call_cost_seconds_total") / hits
    measured = (traced - untraced) / 1e9 / (2 * calls)  # an entry and a return per call
    print(f"budget {per_hit * 1e9:.0f} ns per hit, measured {measured * 1e9:.0f} ns")
    assert measured / 2 <= per_hit <= measured * 2, (per_hit, measured)
    rc, _ = d.stop()
    assert rc == 0, d.log()


def test_window_settings_are_checked(tmp_path):
    from conftest import PYROMETER
    r = subprocess.run([PYROMETER, "run", "--check-config", "--calls-window", "10",
                        "--calls-every", "5"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "calls-window (10 s) must be shorter than calls-every" in r.stderr
    r = subprocess.run([PYROMETER, "run", "--check-config", "--calls-window", "61"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and \
        "run: --calls-window 61: must be a number from 0 to 60" in r.stderr, r.stderr
    r = subprocess.run([PYROMETER, "run", "--check-config", "--calls-window", "2"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "calls-every = 600\n" in r.stdout and \
        "calls-budget = 1\n" in r.stdout


def test_windows_are_pushed_to_pyroscope_as_calls(tmp_path, workload):
    from collector import Collector, push_profiles, push_request_checked
    svc = service()
    workload(ZOO["py315"], TICKER, env={"PYROMETER_SERVICE": svc})
    c = Collector()
    try:
        d = Daemon(tmp_path, "--pyroscope", c.url, "--calls-window", "1", "--calls-every", "2")

        def kinds():
            return [labels["__name__"] for req in c.accepted()
                    for labels, _, _ in push_profiles(req.body)
                    if labels.get("service_name") == svc]

        wait_for(lambda: "calls" in kinds() and "process_cpu" in kinds(), 30,
                   "a calls profile and a CPU profile of the workload")
        rc, _ = d.stop()
        assert rc == 0, d.log()
        for req in c.accepted():
            for labels, _ in push_request_checked(req.body):
                assert labels["__name__"] in ("calls", "process_cpu", "off_cpu"), labels
            for labels, _, raw in push_profiles(req.body):
                if labels.get("service_name") != svc or labels["__name__"] != "calls":
                    continue
                path = tmp_path / f"calls-{uuid.uuid4().hex[:6]}.pb.gz"
                path.write_bytes(raw)
                # at most 100 calls per 10 ms, in a window of 1 s and its attach and detach
                assert 1000 <= counts_by_leaf(RawProfile(str(path))).get("tick", 0) <= 15000
                assert set(labels) >= {"service_name", "host", "python_version"}
    finally:
        c.down()


def test_windows_without_cap_sys_admin_say_so():
    from conftest import PYROMETER
    r = subprocess.run(["setpriv", "--bounding-set=-sys_admin", PYROMETER, "run",
                        "--calls-window", "1", "--metrics-addr", "off"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and ("'run with calls-window (call windows)' needs root or "
                                  "CAP_SYS_ADMIN (missing: CAP_SYS_ADMIN)") in r.stderr, r.stderr


def test_the_first_window_waits_and_a_costly_one_defers_exactly_k_minus_1(tmp_path, workload):
    """The first window starts calls-every seconds after the daemon; a window that cost k
    times its share (k = ceil(cost / share), from the daemon's own cost counter) leaves
    exactly k-1 windows out; a process started during a window is not traced in it."""
    svc = service()
    workload(ZOO["py315"], TICKER, env={"PYROMETER_SERVICE": svc})
    every, budget = 3.0, 0.5  # percent of one CPU: a share of 15 ms per window
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store, "--calls-window", "1", "--calls-every", str(every),
               "--calls-budget", str(budget))
    ready = time.monotonic()
    d.wait_log("call window: tracing the calls of", timeout=every + 15)
    assert time.monotonic() - ready >= every - 0.5, "the first window started early"
    late = service()
    workload(ZOO["py315"], TICKER, env={"PYROMETER_SERVICE": late})  # during the window
    d.wait_log("call window ended", timeout=15)
    cost = wait_metric(d, "pyrometer_call_cost_seconds_total", lambda v: v > 0)
    share = budget / 100 * every
    k = math.ceil(cost / share)
    assert k > 1, (cost, share)
    assert wait_metric(d, "pyrometer_call_windows_deferred_total", lambda v: v > 0) == k - 1
    rc, _ = d.stop()
    assert rc == 0, d.log()
    assert calls_files(store, svc), d.log()
    assert calls_files(store, late) == [], "a process started mid-window was traced"
