"""The daemon as a host runs it: started first (as at boot), with exactly the capability set
of deploy/pyrometer.service, then meeting interpreters nothing else on the host runs (a
private copy of 3.11: a new inode; sid's 3.14 in a chroot), a hostile binary whose notes
repeat a probe thousands of times, and churn of short-lived processes. GC counts are
compared with what each workload counted itself; SIGTERM must end the daemon within 5 s;
perf events must return to where they were."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ZOO, run_storm, service_name, wait_for
from daemon import (availability, daemon_as_deployed, daemon_maps, gc_count, key_pids, perf_fds,
                    stop_leaving_no_trace)
from hostile import drop_probes, point_probe_at, repeat_probe

@pytest.fixture
def private_311(tmp_path):
    """/usr/bin/python3.11 copied: a new inode no other process (pytest included) runs."""
    path = str(tmp_path / "python3.11-private")
    shutil.copy("/usr/bin/python3.11", path)
    return path


@pytest.mark.parametrize("which", ["private-3.11", "sid-3.14"])
def test_gc_of_interpreters_first_seen_after_start(tmp_path, private_311, which):
    d = daemon_as_deployed(tmp_path)
    try:
        if which == "private-3.11":
            argv, root = [private_311], "/"
        else:
            argv, root = ZOO["py314"]["argv"], ZOO["py314"]["root"]
        service = service_name("first")
        seen, total = run_storm(argv, root, service)
        # every collection from the first callback on is counted, none that did not happen
        count = wait_for(lambda: gc_count(d, service) >= seen and gc_count(d, service), 15,
                         f"{seen} collections of {service}")
        assert seen <= count <= total, (seen, count, total)
        assert availability(d, service) == (1, None), d.metrics()
        assert "unavailable" not in d.log() and "cannot attach" not in d.log(), d.log()
    finally:
        stop_leaving_no_trace(d)


@pytest.mark.parametrize("distinct", [False, True], ids=["same-site", "distinct-sites"])
def test_hostile_notes_are_bounded(tmp_path, distinct):
    binary = repeat_probe("/usr/bin/python3.11", str(tmp_path / "python3.11-hostile"),
                          copies=5000, distinct=distinct)
    d = daemon_as_deployed(tmp_path)
    try:
        before = wait_for(lambda: (v := d.metric("pyrometer_gc_uprobes")) is not None and [v],
                          30, "pyrometer_gc_uprobes")[0]
        service = service_name("hostile")
        # 5,001 notes take longer to read than CPython's 16 (README): the workload starts
        # counting 0.2 s in
        seen, total = run_storm([binary], "/", service, linger="3", delay="0.2")
        held = d.metric("pyrometer_gc_uprobes") - before
        assert 0 <= held <= 64, held
        if distinct:  # more than 8 sites of gc__start: refused, and said so
            assert held == 0, held
            assert wait_for(lambda: availability(d, service), 30,
                            f"GC availability of {service}") == (0, "too_many_sites"), d.metrics()
            assert gc_count(d, service) == 0
        else:  # 5,001 notes of one site: that site once, two uprobes in all
            assert held == 2, held
            count = wait_for(lambda: gc_count(d, service) >= seen and gc_count(d, service), 15,
                             lambda: f"{seen} collections of {service}: {d.log()}")
            assert count <= total, (count, total)
            assert d.metric('pyrometer_usdt_sites_refused_total{reason="sites"}') >= 5000, \
                d.metrics()
    finally:
        stop_leaving_no_trace(d)


@pytest.mark.parametrize("lie", ["no_gc_probes", "attach_failed"])
def test_a_binary_whose_gc_cannot_be_traced_says_why(tmp_path, lie):
    """README's reasons of python_gc_tracing_available: notes without the GC probes
    (no_gc_probes), and a gc__start site the kernel refuses a uprobe at (attach_failed: it
    points at a byte 0x06, an opcode invalid in 64-bit code). The interpreter runs as
    before; only its notes lie."""
    binary = str(tmp_path / "python3.11-lying")
    if lie == "no_gc_probes":
        drop_probes("/usr/bin/python3.11", binary, {"gc__start", "gc__done"})
    else:
        point_probe_at("/usr/bin/python3.11", binary, "gc__start", 0x06)
    d = daemon_as_deployed(tmp_path)
    service = service_name(lie.replace("_", "-"))
    p = subprocess.Popen([binary, "-c", "import gc, sys; gc.collect(); sys.stdin.read()"],
                         stdin=subprocess.PIPE, env={**os.environ, "PYROMETER_SERVICE": service})
    try:
        got = wait_for(lambda: availability(d, service), 15,
                       lambda: f"GC availability of {service}: {d.log()}")
        assert got == (0, lie), d.metrics()
        assert gc_count(d, service) == 0
        if lie == "attach_failed":
            assert f"pid {p.pid}: GC tracing unavailable for {binary}: attaching the GC " \
                "probes failed: " in d.log(), d.log()
            assert d.metric("pyrometer_gc_attach_failures_total") >= 1
    finally:
        p.kill()
        p.wait()
        stop_leaving_no_trace(d)


CHURN_RUN = """
import gc, os, time
for g in (0, 1, 2, 0, 0):
    gc.collect(g)
time.sleep(0.3)  # a short CLI tool's life: discovery names its service before it exits
print(sum(s["collections"] for s in gc.get_stats()), flush=True)
os._exit(0)  # no collections at finalization: the line above is the whole truth
"""


def test_short_lived_runs_are_all_counted(tmp_path, private_311):
    """15 runs a second for 20 s of a binary nothing long-lived runs: every collection of
    every run counted, no attach/detach per run, perf events back where they were."""
    script = tmp_path / "run.py"
    script.write_text(CHURN_RUN)
    d = daemon_as_deployed(tmp_path)
    try:
        # the first run makes the daemon attach the new binary (its first collection after
        # the attach shows it is done); the binary lingers from then on
        warm = service_name("warm")
        subprocess.run([private_311, "-c", "import gc, time; time.sleep(0.5); gc.collect()"],
                       check=True, env={**os.environ, "PYROMETER_SERVICE": warm})
        wait_for(lambda: gc_count(d, warm) > 0, 15, lambda: f"a collection of {warm}: {d.log()}")
        base_perf = perf_fds(d.proc.pid)
        attached = d.log().count("attached GC probes")
        service = service_name("churn")
        env = {**os.environ, "PYROMETER_SERVICE": service}
        runs, start = [], time.monotonic()
        for i in range(15 * 20):
            time.sleep(max(0.0, start + i / 15 - time.monotonic()))
            runs.append(subprocess.Popen([private_311, str(script)], stdout=subprocess.PIPE,
                                         text=True, env=env))
        theirs = 0
        for p in runs:
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0
            theirs += int(out)
        wait_for(lambda: gc_count(d, service) == theirs, 20,
                 lambda: f"{theirs} collections of {service} (counted {gc_count(d, service)})")
        assert d.log().count("attached GC probes") == attached, "re-attached during churn"
        assert perf_fds(d.proc.pid) == base_perf
    finally:
        stop_leaving_no_trace(d)


def test_a_binary_is_detached_after_its_last_process_and_the_linger(tmp_path, private_311):
    """A binary only one process runs: its uprobes come with that process, stay for the
    linger period after it exits (2 s here), then go: the daemon's perf-event fds are back
    where they were."""
    d = daemon_as_deployed(tmp_path, "--gc-linger", "2")
    try:
        base = perf_fds(d.proc.pid)
        service = service_name("lingering")
        p = subprocess.Popen([private_311, "-c", "import gc, sys, time\n"
                              "while True: gc.collect(); time.sleep(0.05)"],
                             env={**os.environ, "PYROMETER_SERVICE": service})
        try:
            wait_for(lambda: gc_count(d, service) > 0, 15,
                     lambda: f"a collection of {service}: {d.log()}")
            held = perf_fds(d.proc.pid)
            assert held > base, (held, base)
        finally:
            p.kill()
            p.wait()
        gone = time.monotonic()
        wait_for(lambda: perf_fds(d.proc.pid) == base, 20,
                 lambda: f"{base} perf fds (held {perf_fds(d.proc.pid)})")
        assert time.monotonic() - gone >= 2  # not before the linger (2 s) is over
    finally:
        stop_leaving_no_trace(d)


def test_the_uprobe_limit_detaches_the_binary_idle_longest_then_refuses(tmp_path):
    """README: at most 48 GC uprobes in all; the binary idle the longest is detached to make
    room; a binary refused for the limit says reason="uprobe_limit". Private copies of 3.11
    (each a new inode, with uprobes of its own) running a process each fill the limit."""
    d = daemon_as_deployed(tmp_path)
    procs = {}

    def copy(name):
        path = str(tmp_path / f"python3.11-{name}")
        if not os.path.exists(path):
            shutil.copy("/usr/bin/python3.11", path)
        return path

    def start(name, service):
        procs[service] = subprocess.Popen(
            [copy(name), "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
            env={**os.environ, "PYROMETER_SERVICE": service})
        return wait_for(lambda: availability(d, service), 15,
                        lambda: f"GC availability of {service}: {d.log()}")

    def end(service):
        """Ends the service's process and waits until the daemon has forgotten it (its
        binary is idle from then on)."""
        tracked = d.metric("pyrometer_processes_tracked")
        p = procs.pop(service)
        p.stdin.close()
        p.wait(timeout=30)
        wait_for(lambda: d.metric("pyrometer_processes_tracked") < tracked, 15,
                 f"the daemon to forget {service}")

    try:
        held = d.metric("pyrometer_gc_uprobes")  # the installed interpreters' (pinned)
        assert start(0, "limit-0") == (1, None), d.log()
        per = d.metric("pyrometer_gc_uprobes") - held
        fit = int((48 - held) // per)
        assert per > 0 and fit >= 3, (held, per)
        for i in range(1, fit):
            assert start(i, f"limit-{i}") == (1, None), d.log()
        assert held + (fit - 1) * per < d.metric("pyrometer_gc_uprobes") <= 48
        # one binary more, and none idle: refused, and said why
        assert start("over", "limit-over") == (0, "uprobe_limit"), d.metrics()
        pid = procs["limit-over"].pid
        assert re.search(rf"^pyrometer_usdt_sites_refused_total{{reason=\"uprobe_limit\"}} 1$",
                         d.metrics(), re.M), d.metrics()
        assert f"pid {pid}: GC tracing unavailable for {copy('over')}: the limit of 48 GC " \
            "uprobes is reached" in d.log(), d.log()
        # two binaries idle (0 the longest): a new one takes 0's uprobes, 1 keeps its own
        end("limit-0")
        end("limit-1")
        assert start("new", "limit-new") == (1, None), d.log()
        assert start(1, "limit-1-again") == (1, None), d.log()
        assert start(0, "limit-0-again") == (0, "uprobe_limit"), d.metrics()
        assert d.metric("pyrometer_gc_uprobes") <= 48
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
        stop_leaving_no_trace(d)


GONE_AT_ONCE = ("import gc, os; gc.collect(); "
                "print(sum(s['collections'] for s in gc.get_stats()), flush=True); os._exit(0)")


# A tracked Python that runs GONE_AT_ONCE 30 times (its children are tracked from their
# fork, under its service, until each execs the new interpreter), then reports what those
# made and, its collector off, its own collections.
GONE_PARENT = f"""
import gc, subprocess, sys
print("ready", flush=True)
sys.stdin.readline()
outs = [subprocess.run(["/usr/bin/python3.11", "-S", "-c", {GONE_AT_ONCE!r}],
                       capture_output=True, text=True, check=True).stdout for _ in range(30)]
gc.disable()
print(" ".join(o.strip() for o in outs), flush=True)
print(sum(s["collections"] for s in gc.get_stats()), flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("parent", ["shell", "python"])
def test_processes_gone_before_discovery_are_counted_as_unknown(tmp_path, parent):
    """Processes of an attached interpreter that exit before discovery reads them (here:
    while the daemon is stopped): their collections are counted, exactly, under service
    "unknown", and their entries leave the kernel maps (they used to stay for good, filling
    the maps a host with churn needs). Started by a tracked Python, each is its parent's
    fork child first: the image it execs into is still not named, so not its parent's
    service either (it used to be credited so)."""
    d = daemon_as_deployed(tmp_path)
    spawner = None
    try:
        maps = daemon_maps(d.proc.pid)
        base = gc_count(d, "unknown")
        base_unattributed = wait_for(
            lambda: (v := d.metric("pyrometer_gc_unattributed_processes_total")) is not None
            and [v], 30, "pyrometer_gc_unattributed_processes_total")[0]
        if parent == "python":
            service = service_name("spawner")
            (tmp_path / "spawner.py").write_text(GONE_PARENT)
            spawner = subprocess.Popen(["/usr/bin/python3.11", str(tmp_path / "spawner.py")],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env={**os.environ, "PYROMETER_SERVICE": service})
            assert spawner.stdout.readline().strip() == "ready"
            wait_for(lambda: availability(d, service) == (1, None), 30,
                     lambda: f"GC tracing of {service}: {d.metrics()}")
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            if parent == "python":
                spawner.stdin.write("go\n")
                spawner.stdin.flush()
                out = spawner.stdout.readline()
                own = int(spawner.stdout.readline())
            else:
                out = subprocess.run(["sh", "-c", 'for i in $(seq 30); do '
                                      f'/usr/bin/python3.11 -S -c "{GONE_AT_ONCE}"; done'],
                                     capture_output=True, text=True, check=True,
                                     timeout=60).stdout
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        assert len(out.split()) == 30, out
        theirs = sum(map(int, out.split()))
        wait_for(lambda: gc_count(d, "unknown") - base == theirs, 20,
                 lambda: f"{theirs} collections under unknown (counted "
                 f"{gc_count(d, 'unknown') - base}): {d.metrics()}")
        # folded and taken out of the maps within the sweep's 5 s, and still counted
        wait_for(lambda: d.metric("pyrometer_gc_unattributed_processes_total") -
                 base_unattributed == 30, 20, lambda: f"30 unattributed processes: {d.metrics()}")
        assert gc_count(d, "unknown") - base == theirs
        if parent == "python":
            assert gc_count(d, service) == own, (gc_count(d, service), own)
        for name in ("gc_stats", "gc_hist"):
            left = {p for p in key_pids(maps[name]) if not os.path.exists(f"/proc/{p}")}
            assert not left, f"{name} keeps entries of exited processes {sorted(left)}"
    finally:
        if spawner:
            spawner.kill()
            spawner.wait()
        stop_leaving_no_trace(d)


EXEC_LAUNCHER = """
import gc, os, sys
for g in (0, 1, 2, 0, 0, 1, 0):
    gc.collect(g)
print(sum(s["collections"] for s in gc.get_stats()), flush=True)
os.execve(sys.executable, [sys.executable, sys.argv[1]],
          dict(os.environ, PYROMETER_SERVICE=sys.argv[2]))
"""

# collects at once, in the milliseconds discovery takes to name the new image
EXEC_SERVER = """
import gc, os, time
for i in range(3000):
    gc.collect(i % 3 == 2)
time.sleep(0.5)
print(sum(s["collections"] for s in gc.get_stats()), flush=True)
os._exit(0)  # no collections at finalization: the line above is the whole truth
"""


def test_a_python_that_execs_a_python_counts_each_image_for_its_own_service(tmp_path):
    """A launcher (a supervisor's fork child, an entry-point script) that execs a Python
    server: one pid, two images, two services. Each image's collections count for its own
    service, exactly, however soon after the exec the server collects (the launcher's
    service used to get the server's first collections, or the server the launcher's)."""
    (tmp_path / "launcher.py").write_text(EXEC_LAUNCHER)
    (tmp_path / "server.py").write_text(EXEC_SERVER)
    d = daemon_as_deployed(tmp_path)
    try:
        launcher, server = service_name("launcher"), service_name("server")
        want = [0, 0]
        for _ in range(3):
            out = subprocess.run(["/usr/bin/python3.11", str(tmp_path / "launcher.py"),
                                  str(tmp_path / "server.py"), server],
                                 capture_output=True, text=True, timeout=60, check=True,
                                 env={**os.environ, "PYROMETER_SERVICE": launcher}).stdout
            counts = [int(x) for x in out.split()]
            assert len(counts) == 2 and counts[1] >= 3000, out
            want = [want[0] + counts[0], want[1] + counts[1]]
        want = tuple(want)
        wait_for(lambda: (gc_count(d, launcher), gc_count(d, server)) == want, 20,
                 lambda: f"counts {want} (counted {(gc_count(d, launcher), gc_count(d, server))})"
                 f": {d.log()[-3000:]}")
    finally:
        stop_leaving_no_trace(d)


SLOW_LOGGED = """
import gc, os, sys, time
gc.disable()
def collect_here():
    gc.collect(1)
for _ in range(50):
    collect_here()
print(gc.get_stats()[1]["collections"], flush=True)
time.sleep(0.5)  # pause events are read every 200 ms, and named while the process lives
os._exit(0)
"""


def test_pauses_over_gc_threshold_ms_are_logged_with_their_stack(tmp_path):
    """gc-threshold-ms = 0: the daemon logs every pause, each once, with its service and the
    Python stack that made it."""
    d = daemon_as_deployed(tmp_path, "--gc-threshold-ms", "0")
    try:
        service = service_name("slowlog")
        script = tmp_path / "slow.py"
        script.write_text(SLOW_LOGGED)
        p = subprocess.run(["/usr/bin/python3.11", str(script)], capture_output=True, text=True,
                           check=True, timeout=60, env={**os.environ, "PYROMETER_SERVICE": service})
        theirs = int(p.stdout)
        pid_line = re.compile(rf"GC pause of [\d.]+ ms in pid \d+ \({re.escape(service)}\), "
                              r"generation 1: (.*)$")
        logged = lambda: [m.group(1) for l in d.lines if (m := pid_line.search(l))]
        wait_for(lambda: len(logged()) >= theirs, 15,
                 lambda: f"{theirs} logged pauses: {d.log()[-3000:]}")
        assert len(logged()) == theirs == 50
        assert all(s.startswith("collect_here (") for s in logged()), logged()[:3]
    finally:
        stop_leaving_no_trace(d)
