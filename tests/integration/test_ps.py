"""`pyrometer ps` against every interpreter of the zoo.

What ps says is compared with independent sources: the interpreter's own sys.version_info
(recorded in zoo.json), readelf's view of the probes, /proc/PID/maps read by the test, and
the capability table of shared/DESIGN.md written out below.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import PYROMETER, SLEEPER, ZOO, ps_json, run_pyrometer
from daemon import bpf_ids

# From DESIGN.md's table: which pyrometer capabilities each build supports.
EXPECTED_CAPS = {
    "py39": ["cpu", "gc", "imports", "calls"],
    "py310": ["cpu", "gc", "imports", "calls"],        # built from source with dtrace
    "py311": ["cpu", "gc", "imports", "call-counts"],  # entry never fires for Py->Py calls
    "py311-embedded": ["cpu", "gc", "imports", "call-counts"],
    "py311-nousdt": ["cpu"],                           # no USDT at all
    "py312": ["cpu", "gc", "imports"],                 # function probes never emitted
    "py313": ["cpu", "gc", "imports"],                 # function probes absent
    "py314": ["cpu", "gc", "imports"],
    "py314t": ["cpu", "gc", "imports"],                # free-threaded
    "py315": ["cpu", "gc", "imports", "calls"],        # restored upstream
}


def interpreter_file(pid):
    """The file holding the interpreter, found by the test itself in /proc/PID/maps: a
    mapped libpython if there is one, else the executable."""
    paths = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/"):
                paths.append(parts[5].strip())
    libs = [p for p in paths if os.path.basename(p).startswith("libpython")]
    return libs[0] if libs else os.path.realpath(f"/proc/{pid}/exe")


def readelf_probes(path):
    """Names of the 'python' provider's USDT probes, as readelf -n prints them."""
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True,
                         check=True).stdout
    names, provider = set(), None
    for line in out.splitlines():
        m = re.match(r"\s+Provider: (\S+)", line)
        if m:
            provider = m.group(1)
        m = re.match(r"\s+Name: (\S+)", line)
        if m and provider == "python":
            names.add(m.group(1))
    return names


def lowest_mapping(pid, path):
    with open(f"/proc/{pid}/maps") as f:
        starts = [int(l.split("-")[0], 16) for l in f if l.rstrip().endswith(" " + path)]
    return min(starts)


@pytest.mark.parametrize("name", sorted(EXPECTED_CAPS))
def test_ps_describes_each_interpreter(name, workload):
    entry = ZOO[name]
    w = workload(entry)
    p = ps_json()[w.pid]
    host_file = interpreter_file(w.pid)

    assert p["version"] == entry["version"]
    assert p["free_threaded"] == entry["version"].endswith("t")
    assert p["capabilities"] == EXPECTED_CAPS[name]
    assert set(p["usdt"]) == readelf_probes(host_file)
    assert p["root"] == entry["root"]
    # The path the process itself sees (inside its chroot), not ours.
    root = entry["root"].rstrip("/")
    assert root + p["interpreter_path"] == host_file
    assert p["interpreter_kind"] == ("shared-library" if name == "py311-embedded"
                                     else "executable")
    assert int(p["load_address"], 16) == lowest_mapping(w.pid, host_file)
    st = os.stat(host_file)
    assert p["inode"] == st.st_ino
    assert p["device"] == f"{os.major(st.st_dev):x}:{os.minor(st.st_dev):x}"
    for cap in ("cpu", "gc", "imports"):
        assert (cap in p["unavailable"]) == (cap not in p["capabilities"])


def test_no_usdt_build_says_why_gc_is_unavailable(workload):
    w = workload(ZOO["py311-nousdt"])
    p = ps_json()[w.pid]
    assert p["usdt"] == []
    assert "USDT" in p["unavailable"]["gc"]
    assert "USDT" in p["unavailable"]["calls"]


def test_ps_text_output_lists_the_process(workload):
    w = workload(ZOO["py313"])
    out = run_pyrometer("ps").stdout
    line = next(l for l in out.splitlines() if l.split()[0] == str(w.pid))
    assert ZOO["py313"]["version"] in line
    assert ZOO["py313"]["root"] + ":/usr/bin/python3.13" in line


def test_non_python_processes_are_not_listed(workload):
    w = workload(ZOO["py311"])  # a listing that holds nothing must not pass
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        listed = ps_json()
        assert w.pid in listed and sleeper.pid not in listed, sorted(listed)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_deleted_binary_is_still_identified(tmp_path, workload):
    """A package upgrade deletes the binary under a running process: the mapping itself is
    read through /proc/PID/map_files."""
    copy = tmp_path / "python3.11"
    shutil.copy2("/usr/bin/python3.11", copy)
    w = workload({**ZOO["py311"], "argv": [str(copy)]})
    copy.unlink()
    p = ps_json()[w.pid]
    assert p["version"] == ZOO["py311"]["version"]
    assert p["capabilities"] == EXPECTED_CAPS["py311"]


def test_process_that_chroots_after_start(tmp_path, workload):
    """The process's root changes under it; its maps still name a file outside the new
    root. Resolving that path inside the root must not find (or trust) another file."""
    fake_root = tmp_path / "root"
    (fake_root / "usr" / "bin").mkdir(parents=True)
    # A decoy at the same path inside the new root: a symlink leading out of it.
    os.symlink("/../../../../../../usr/bin/python3.11", fake_root / "usr/bin/python3.11")
    script = f"""
import os, sys
os.chroot({str(fake_root)!r})
print("ready", flush=True)
sys.stdin.readline()
"""
    w = workload(ZOO["py311"], script)
    p = ps_json()[w.pid]
    assert p["root"] == str(fake_root)
    assert p["version"] == ZOO["py311"]["version"]


# ---- ps --watch ----

LATENCY_LIMIT_NS = 200_000_000


def events_until_restart(watch, pid):
    """Events for pid up to its first start after it exec'd out of the Python it was."""
    got = []
    while True:
        got.append(watch.next_matching(lambda e: e.get("pid") == pid))
        if got[-1]["event"] == "start" and any(e.get("why") == "exec" for e in got):
            return got


@pytest.mark.parametrize("name", sorted(EXPECTED_CAPS))
def test_watch_reports_start_and_exit(name, watch, workload):
    before = time.monotonic_ns()
    w = workload(ZOO[name], SLEEPER, ["7"])
    # This test runs in CPython too: the workload's pid starts as a fork of pytest, leaves
    # Python when it execs (chroot or the interpreter), and starts again as the zoo's.
    got = events_until_restart(watch, w.pid)
    assert len(got) == 3
    forked, execed, start = got
    assert (forked["event"], forked["ppid"]) == ("start", os.getpid())
    assert (execed["event"], execed["why"]) == ("exit", "exec")
    assert start["version"] == ZOO[name]["version"]
    assert start["capabilities"] == EXPECTED_CAPS[name]
    # ktime_ns is the kernel's CLOCK_MONOTONIC at exec: it must fall inside our window.
    assert before <= start["ktime_ns"] <= time.monotonic_ns()
    assert start["reported_ns"] - start["ktime_ns"] <= LATENCY_LIMIT_NS

    w.proc.stdin.close()  # the workload exits with status 7
    w.proc.wait()
    end = watch.next_matching(lambda e: e.get("event") == "exit" and e["pid"] == w.pid)
    assert end["why"] == "exited"
    assert end["exit_status"] == 7
    assert end["reported_ns"] - end["ktime_ns"] <= LATENCY_LIMIT_NS


def test_watch_names_the_signal_that_killed_a_process(watch, workload):
    """An exit by a signal says which (README: `why: exited` with `signal`), and no exit
    status."""
    w = workload(ZOO["py311"])
    events_until_restart(watch, w.pid)
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait()
    end = watch.next_matching(lambda e: e.get("event") == "exit" and e["pid"] == w.pid)
    assert end["why"] == "exited" and end["signal"] == signal.SIGKILL, end
    assert "exit_status" not in end, end


def test_watch_lists_running_processes_first(workload):
    w = workload(ZOO["py39"])
    proc = subprocess.Popen([PYROMETER, "ps", "--watch", "--json"], stdout=subprocess.PIPE,
                            text=True)
    snapshot = []
    try:
        for line in proc.stdout:
            e = json.loads(line)
            if e["event"] == "synced":
                break
            snapshot.append(e)
    finally:
        proc.terminate()
        proc.wait()
    assert {e["event"] for e in snapshot} == {"present"}
    assert w.pid in [e["pid"] for e in snapshot]


@pytest.mark.parametrize("late", [False, True])
def test_watch_follows_forks(watch, workload, late):
    """A forked child that exits at once is reported as started, then as exited with its
    status. late: the watcher is stopped (SIGSTOP) until the child is gone, as a loaded
    machine delays it; it used to call such a child "vanished", without its status."""
    script = """
import os, sys
print("ready", flush=True)
sys.stdin.readline()
pid = os.fork()
if pid == 0:
    os._exit(5)
os.waitpid(pid, 0)
print(pid, flush=True)
sys.stdin.readline()
"""
    w = workload(ZOO["py315"], script)
    watch.next_matching(lambda e: e.get("event") == "start" and e["pid"] == w.pid)
    if late:
        os.kill(watch.proc.pid, signal.SIGSTOP)
    try:
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        child = int(w.proc.stdout.readline())  # reaped by now
    finally:
        if late:
            os.kill(watch.proc.pid, signal.SIGCONT)
    start = watch.next_matching(lambda e: e.get("event") == "start" and e["pid"] == child)
    assert start["ppid"] == w.pid
    assert start["version"] == ZOO["py315"]["version"]
    end = watch.next_matching(lambda e: e.get("event") == "exit" and e["pid"] == child)
    assert end["why"] == "exited" and end["exit_status"] == 5, end


def test_watch_calls_a_process_whose_exit_it_missed_vanished(watch, workload):
    """README: why "vanished". The watcher is stopped (SIGSTOP, as a loaded machine delays
    it) while a tracked Python forks 15,000 children that exit at once: their fork and exit
    events (30,000) overflow the 1 MiB event ring (about 18,700), so the Python's own exit
    event, after them, is lost. Resumed, the watcher finds events lost, rescans /proc and
    reports the Python gone without a status it never saw."""
    script = """
import os, sys
print("ready", flush=True)
sys.stdin.readline()
for _ in range(15000):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
"""
    w = workload(ZOO["py311"], script)
    # pytest is a Python: its forked child is reported first, then the exec of the workload
    watch.next_matching(lambda e: e.get("event") == "start" and e["pid"] == w.pid and
                        e["comm"] == "python3.11")
    os.kill(watch.proc.pid, signal.SIGSTOP)
    try:
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        assert w.proc.wait(timeout=300) == 0
    finally:
        os.kill(watch.proc.pid, signal.SIGCONT)
    end = watch.next_matching(lambda e: e.get("event") == "exit" and e["pid"] == w.pid,
                              timeout=120)
    assert end["why"] == "vanished" and end["ktime_ns"] is None, end
    assert "exit_status" not in end and "signal" not in end, end
    assert watch.stop() == 0
    assert "process events lost (ring buffer or pid map full): rescanning /proc" in \
        watch.proc.stderr.read()


def test_watch_reports_exec_into_something_else(watch, workload):
    script = """
import os, sys
print("ready", flush=True)
sys.stdin.readline()
os.execv("/bin/sleep", ["sleep", "0.2"])
"""
    w = workload(ZOO["py311"], script)
    watch.next_matching(lambda e: e.get("event") == "start" and e["pid"] == w.pid)
    w.proc.stdin.write("go\n")
    w.proc.stdin.flush()
    end = watch.next_matching(lambda e: e.get("event") == "exit" and e["pid"] == w.pid)
    assert end["why"] == "exec"


def test_watch_stops_cleanly_on_sigterm(watch):
    """SIGTERM: exit 0 within the poll period, nothing said on stderr, its output ended,
    and the BPF programs it loaded gone from the kernel with it."""
    progs = {i for kind, i in bpf_ids(watch.proc.pid) if kind == "prog"}
    assert progs, "ps --watch holds no BPF program"
    start = time.monotonic()
    assert watch.stop() == 0
    assert time.monotonic() - start < 5
    assert watch.proc.stderr.read() == ""
    assert watch.lines.get(timeout=5) is None  # end of output, nothing after the snapshot

    def left():  # the kernel frees a program after an RCU grace period, not at once
        return [i for i in progs if subprocess.run(["bpftool", "prog", "show", "id", str(i)],
                                                   capture_output=True).returncode == 0]
    end = time.monotonic() + 10
    while left() and time.monotonic() < end:
        time.sleep(0.2)
    assert not left(), left()
