"""Shared fixtures and helpers: the pyrometer binary, the CPython zoo, workloads started in it,
free ports and waiting for a condition (one copy of each, for every test module and for
tests/kernels, tests/soak and tests/bench).

The zoo is built by tests/zoo/build.sh (make zoo). If it is missing the tests fail at
collection with a message saying so; they never skip.
"""
import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYROMETER = os.environ.get("PYROMETER", os.path.join(ROOT, "build", "pyrometer"))
ZOO_DIR = os.environ.get("PYROMETER_ZOO", "/var/cache/pyrometer-zoo")


def load_zoo():
    path = os.path.join(ZOO_DIR, "zoo.json")
    if not os.path.exists(path):
        raise RuntimeError(f"the CPython zoo is missing ({path}); build it with `make zoo`")
    with open(path) as f:
        return {e["name"]: e for e in json.load(f)}


ZOO = load_zoo()


def pytest_configure(config):
    if not os.path.exists(PYROMETER):
        raise pytest.UsageError(f"{PYROMETER} is missing; build it with `make`")
    if os.geteuid() != 0:
        raise pytest.UsageError("the integration tests load BPF programs: run them as root")


class Workload:
    """A Python process from the zoo running a script; it prints 'ready' once started."""

    def __init__(self, entry, script, args=(), env=None, stderr=None):
        self.entry = entry
        root = entry["root"]
        name = f"pyro-test-{uuid.uuid4().hex[:8]}.py"
        os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
        self.host_script = os.path.join(root, "tmp", name)
        with open(self.host_script, "w") as f:
            f.write(script)
        self.script_in_root = "/tmp/" + name
        argv = entry["argv"] + [self.script_in_root] + list(args)
        if root != "/":
            argv = ["chroot", root] + argv  # chroot execs the interpreter: same pid
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, text=True, env={**os.environ, **(env or {})})
        self.pid = self.proc.pid
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"{entry['name']} workload did not start: {line!r}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        try:
            os.unlink(self.host_script)
        except FileNotFoundError:
            pass


WORKLOADS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads")


def workload_script(name):
    with open(os.path.join(WORKLOADS, name)) as f:
        return f.read()


SLEEPER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()          # exits when the test closes our stdin
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


@pytest.fixture(autouse=True)
def no_daemon_outlives_its_test():
    """A test that failed before stopping its daemon or its `pyrometer gc` leaves it running
    (tracing every Python process on the host): kill it."""
    from daemon import Daemon
    yield
    for running in (Daemon.running, GcTrace.running):
        while running:
            proc = running.pop().proc
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def workload():
    started = []

    def start(entry, script=SLEEPER, args=(), env=None, stderr=None):
        w = Workload(entry, script, args, env, stderr)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


class GcTrace:
    """`pyrometer gc --json ARGS` in the background (ARGS say what to trace). Its output is
    read all along: unread, it would fill the pipe and stall pyrometer."""

    running = []  # every instance, for no_daemon_outlives_its_test

    def __init__(self, *args):
        self.proc = subprocess.Popen([PYROMETER, "gc", "--json", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        GcTrace.running.append(self)
        self.lines = queue.Queue()
        self.events = []
        self.err = []  # stderr, read all along too (-v fills a pipe)
        self.err_reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr),
                                           daemon=True)
        self.err_reader.start()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda e: e["event"] == "ready")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def wait_for(self, pred, timeout=30):
        while True:
            e = self.lines.get(timeout=timeout)
            if e is None:
                raise AssertionError("pyrometer gc ended: " + self.stderr())
            self.events.append(e)
            if pred(e):
                return e

    def stderr(self):
        """All of stderr once the process has ended, what came so far before."""
        if self.proc.poll() is not None:
            self.err_reader.join(timeout=30)
        return "".join(self.err)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=30) == 0, self.stderr()
        while (e := self.lines.get(timeout=10)) is not None:
            self.events.append(e)
        return self.events


def free_port():
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=30, what="the condition"):
    """Calls pred every 0.1 s until it returns something true, and returns that. After timeout
    seconds: AssertionError naming what (a string, or a callable giving one then, for a
    message built from the state at that moment: a log, the last value seen)."""
    end = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() >= end:
            raise AssertionError(f"no {what() if callable(what) else what} within {timeout} s "
                                 f"(last: {got!r})")
        time.sleep(0.1)


def wait_attached(trace, w):
    """Waits until pyrometer traces w's own interpreter. Each workload is first pytest's
    fork child, a Python that -a traces too (a "tracking" event for the same pid, with our
    comm); the interpreter w execs is attached after that event, and a second process
    started before the attach is counted from later (right after another daemon's exit,
    whose uprobe removals the kernel serialises with ours, 100-200 ms later)."""
    with open(f"/proc/{w.pid}/comm") as f:
        comm = f.read().strip()
    with open("/proc/self/comm") as f:
        assert comm != f.read().strip(), "the workload's comm must differ from pytest's"
    trace.wait_for(lambda e: e["event"] == "tracking" and e["pid"] == w.pid and
                   e["comm"] == comm)


def run_gc_workload(name, workload, gctrace, threshold="1000"):
    trace = gctrace("--threshold", threshold)
    # A first process of the same binary makes pyrometer attach to it; every process
    # started after that is counted from its first collection.
    warm = workload(ZOO[name])
    wait_attached(trace, warm)
    w = workload(ZOO[name], workload_script("gc_heavy.py"), ["2"])
    w.proc.stdin.write("go\n")
    w.proc.stdin.flush()
    report = json.loads(w.proc.stdout.readline())
    w.proc.wait(timeout=30)
    events = trace.stop()
    return w, report, events


def run_pyrometer(*args, check=True, **kw):
    r = subprocess.run([PYROMETER, *args], capture_output=True, text=True, timeout=60, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"pyrometer {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def ps_json():
    out = run_pyrometer("ps", "--json").stdout
    return {p["pid"]: p for p in map(json.loads, out.splitlines())}


class Watch:
    """`pyrometer ps --watch --json` in the background, its lines read by a thread."""

    def __init__(self):
        self.proc = subprocess.Popen([PYROMETER, "ps", "--watch", "--json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_matching(lambda e: e.get("event") == "synced", timeout=30)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next_matching(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("pyrometer ps --watch did not report the expected event")
            try:
                e = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if e is None:
                raise AssertionError(f"ps --watch ended: {self.proc.stderr.read()}")
            if pred(e):
                return e

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def watch():
    w = Watch()
    yield w
    w.stop()


def service_name(prefix):
    """A service name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# A gcstorm-like workload: it counts its own collections with gc.callbacks from its first
# statement on (a binary first seen after the daemon started is traced from 1-10 ms after its
# exec, README; the interpreter takes longer than that to reach its first statement), makes
# many collections of each generation, and reports both that count and gc.get_stats().
STORM = """
import gc, os, sys, time
time.sleep(float(sys.argv[1]))
seen = [0]
gc.callbacks.append(lambda phase, info: phase == "stop" and seen.__setitem__(0, seen[0] + 1))
junk = []
for i in range(3000):
    junk.append([[] for _ in range(50)])
    if i % 100 == 0:
        gc.collect(i // 100 % 3)
    if len(junk) > 500:
        del junk[:250]
total = sum(s["collections"] for s in gc.get_stats())
print(seen[0], total, flush=True)
time.sleep(float(sys.argv[2]))
os._exit(0)  # no collections at finalization: gc.get_stats() above is the whole truth
"""


def run_storm(argv, root, service, linger="2", delay="0"):
    """Runs STORM to completion, its callbacks registered after `delay` seconds and the
    process kept `linger` seconds after; returns (collections its callbacks saw, total)."""
    name = f"storm-{uuid.uuid4().hex[:6]}.py"
    script = os.path.join(root, "tmp", name)  # inside the root a chroot'd Python sees
    os.makedirs(os.path.dirname(script), exist_ok=True)
    with open(script, "w") as f:
        f.write(STORM)
    cmd = argv + ["/tmp/" + name, delay, linger]
    if root != "/":
        cmd = ["chroot", root] + cmd
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYROMETER_SERVICE": service})
    finally:
        os.unlink(script)
    assert out.returncode == 0, out.stderr
    seen, total = map(int, out.stdout.split())
    assert seen > 50, out.stdout
    return seen, total
