"""Shared fixtures: the pyrometer binary, the CPython zoo, and workloads started in it.

The zoo is built by tests/zoo/build.sh (make zoo). If it is missing the tests fail at
collection with a message saying so; they never skip.
"""
import json
import os
import queue
import signal
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
    """A test that failed before stopping its daemon leaves it running: kill it."""
    from daemon import Daemon
    yield
    while Daemon.running:
        d = Daemon.running.pop()
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(timeout=30)


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

    def __init__(self, *args):
        self.proc = subprocess.Popen([PYROMETER, "gc", "--json", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.events = []
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
                raise AssertionError("pyrometer gc ended: " + self.proc.stderr.read())
            self.events.append(e)
            if pred(e):
                return e

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=30) == 0, self.proc.stderr.read()
        while (e := self.lines.get(timeout=10)) is not None:
            self.events.append(e)
        return self.events


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
