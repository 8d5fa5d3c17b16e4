"""The server zoo: Debian's gunicorn (sync and gthread), uWSGI (python3 plugin: libpython
arrives by dlopen) and uvicorn (--workers: multiprocessing spawn), each serving one Flask
application to wrk for SERVER_SECONDS, and a Celery prefork worker fed by a producer through
Debian's redis-server, with the daemon started first. What pyrometer reports is compared
with what each server process reports of itself (workloads/servers/sitecustomize.py):
services, exact GC counts, the handlers' CPU shares, where requests wait, start-up imports,
and a prompt stop."""
import glob
import json
import os
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import PYROMETER
from daemon import Daemon, cpu_profiles, free_port
from pprof_raw import RawProfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads", "servers")
# at least a minute of traffic each (PYROMETER_SERVER_SECONDS shortens it while developing)
SERVER_SECONDS = int(os.environ.get("PYROMETER_SERVER_SECONDS", "60"))
# Debian's servers run Debian's python3: nothing from the host's PATH (pyenv) may come first
DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

SERVERS = {
    "gunicorn-sync": lambda mod, port: [
        "/usr/bin/gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", f"{mod}:app"],
    "gunicorn-gthread": lambda mod, port: [
        "/usr/bin/gunicorn", "-w", "2", "-k", "gthread", "--threads", "4",
        "-b", f"127.0.0.1:{port}", f"{mod}:app"],
    # threads for the stats writer; PyOS_AfterFork in workers runs its fork hook
    "uwsgi": lambda mod, port: [
        "/usr/bin/uwsgi", "--plugin", "python3", "--http-socket", f"127.0.0.1:{port}",
        "--module", f"{mod}:app", "--master", "--processes", "2", "--enable-threads",
        "--py-call-osafterfork", "--die-on-term"],
    "uvicorn": lambda mod, port: [
        "/usr/bin/uvicorn", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "2", f"{mod}:app"],
    # port: redis-server's
    "celery": lambda mod, port: [
        "/usr/bin/celery", "-A", mod, "worker", "--concurrency", "2", "--pool", "prefork",
        "-l", "warning"],
}
CELERY_RATE = 150  # tasks a second from the producer


class Server:
    def __init__(self, kind, tmp_path):
        self.kind = kind
        self.module = f"{'tasks' if kind == 'celery' else 'shop'}{uuid.uuid4().hex[:6]}"
        self.dir = tmp_path / "app"
        self.stats = tmp_path / "stats"
        self.dir.mkdir()
        self.stats.mkdir()
        source = "tasks.py" if kind == "celery" else "app.py"
        for src, dst in ((source, f"{self.module}.py"), ("handlers.py", "handlers.py"),
                         ("sitecustomize.py", "sitecustomize.py")):
            with open(os.path.join(HERE, src)) as f:
                (self.dir / dst).write_text(f.read())
        self.port = free_port()
        self.env = {"PATH": DEBIAN_PATH, "PYTHONPATH": str(self.dir), "LANG": "C.UTF-8",
                    "CELERY_BROKER": f"redis://127.0.0.1:{self.port}/0"}
        self.log_path = tmp_path / "server.log"
        self.log = open(self.log_path, "w")
        self.broker = None
        if kind == "celery":
            self.broker = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], stdout=self.log, stderr=subprocess.STDOUT)
        # Started by a shell, as a service manager starts it: the server's pid never ran a
        # Python before (a Python that execs a server is another case: see the README's
        # Status).
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", 'trap \'kill -TERM $pid; wait $pid\' TERM; "$@" & pid=$!; wait $pid',
             "sh", *SERVERS[kind](self.module, self.port)], cwd=self.dir, stdout=self.log,
            stderr=subprocess.STDOUT, env={**self.env, "SRV_STATS": str(self.stats)})
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert self.proc.poll() is None, open(self.log_path).read()
            if self.ready():
                return
            time.sleep(0.2)
        raise AssertionError(f"{kind} did not start: " + open(self.log_path).read())

    def ready(self):
        if self.kind == "celery":  # the master and its two pool processes are up
            return len([r for r in self.reports().values() if r["app_pid"]]) >= 3
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/light", timeout=5).read()
            return True
        except OSError:
            return False

    def load(self):
        """SERVER_SECONDS of traffic: wrk, or the Celery producer until the queue is empty."""
        if self.kind != "celery":
            wrk = subprocess.run(["wrk", "-t2", "-c8", f"-d{SERVER_SECONDS}s", "-s",
                                  os.path.join(HERE, "mix.lua"), f"http://127.0.0.1:{self.port}/"],
                                 capture_output=True, text=True, timeout=SERVER_SECONDS + 60)
            assert wrk.returncode == 0 and "requests in" in wrk.stdout, wrk.stdout + wrk.stderr
            return
        producer = subprocess.run(
            ["/usr/bin/python3", f"{self.module}.py", str(CELERY_RATE), str(SERVER_SECONDS)],
            cwd=self.dir, env={**self.env, "PYROMETER_SERVICE": "loadgen"},
            capture_output=True, text=True, timeout=SERVER_SECONDS + 60)
        assert producer.returncode == 0, producer.stderr
        end = time.monotonic() + 60
        while self.queued() and time.monotonic() < end:
            time.sleep(0.5)
        assert not self.queued(), "the worker did not keep up"

    def queued(self):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "llen", "celery"],
                             capture_output=True, text=True, timeout=30).stdout
        return int(out.strip() or 0)

    def reports(self):
        """Each live process's own report, by pid."""
        out = {}
        for path in glob.glob(str(self.stats / "*.json")):
            with open(path) as f:
                r = json.load(f)
            if os.path.exists(f"/proc/{r['pid']}"):
                out[r["pid"]] = r
        return out

    def stop(self):
        for p in (self.proc, self.broker):
            if p is None:
                continue
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.log.close()


def gc_metrics(d, service):
    got = [0, 0, 0]
    prefix = f'python_gc_collections_total{{service_name="{service}",generation="'
    for line in d.metrics().splitlines():
        if line.startswith(prefix):
            got[int(line[len(prefix)])] = int(float(line.split()[-1]))
    return got


def own_collections(reports):
    """Collections each process ran itself (a forked worker's inherited counts left out)."""
    return [sum(r["collections"][g] - r["inherited"][g] for r in reports.values())
            for g in range(3)]


def settled_gc(d, srv):
    """The daemon's counts and the processes' own, read while neither changed."""
    end = time.monotonic() + 20
    while True:
        before = srv.reports()
        time.sleep(0.5)  # past the next report of each process
        got = gc_metrics(d, srv.module)
        after = srv.reports()
        want = own_collections(after)
        if (before == after and got == want) or time.monotonic() > end:
            return got, want


def handler_samples(profiles):
    n = {"handler_heavy": 0, "handler_light": 0}
    for p in profiles:
        for count, stack, _ in RawProfile(p).samples:
            for name in n:
                if name in stack:
                    n[name] += count
    return n


def off_cpu_seconds_in(profiles, function):
    total = 0
    for p in profiles:
        r = RawProfile(p)
        total += sum(ns for (_, stack, _), ns in zip(r.samples, r.second) if function in stack)
    return total / 1e9


def import_pids_with(profiles, module):
    pids = set()
    for p in profiles:
        for _, stack, labels in RawProfile(p).samples:
            if stack and stack[0] == module:
                pids.add(int(labels["pid"]))
    return pids


def ps_services():
    out = subprocess.run([PYROMETER, "ps", "--json"],
                         capture_output=True, text=True, timeout=60).stdout
    return {e["pid"]: e["service_name"] for e in map(json.loads, out.splitlines())}


@pytest.mark.parametrize("kind", list(SERVERS))
def test_server_under_load(kind, tmp_path):
    store = tmp_path / "store"
    d = Daemon(tmp_path, "--store", str(store), interval="5")
    srv = Server(kind, tmp_path)
    try:
        srv.load()
        assert d.proc.poll() is None, "the daemon died under load:\n" + d.log()
        reports = srv.reports()
        workers = [r for r in reports.values() if r["handlers"]]
        # (with keep-alive connections one worker may take them all: gthread, uvicorn)
        assert workers, reports
        # every process of the server, master and workers, under the application's name
        services = ps_services()
        assert {pid: services.get(pid) for pid in reports} == \
            {pid: srv.module for pid in reports}, (services, reports)
        got, want = settled_gc(d, srv)
        assert got == want, (got, want, srv.reports())
        app_pids = {r["app_pid"] for r in reports.values() if r["app_pid"]}
    finally:
        srv.stop()
    rc, took = d.stop()
    assert rc == 0, d.log()
    assert took < 5, took
    files = glob.glob(str(store / srv.module / "*.pb.gz"))
    # the handlers' shares of CPU samples, against their threads' own CPU time
    n = handler_samples(cpu_profiles(files))
    cpu = {h: sum(r["handlers"].get(h, (0, 0))[0] for r in workers) for h in ("heavy", "light")}
    sampled = n["handler_heavy"] / (n["handler_heavy"] + n["handler_light"])
    measured = cpu["heavy"] / (cpu["heavy"] + cpu["light"])
    assert abs(sampled - measured) <= 0.05, (n, cpu)
    # the samples account for the handlers' CPU time: 99 a second (up to a quarter more beside
    # other busy tasks: the sampling timer's tick also ends time slices, and a slice that
    # ends at it is sampled in the task that had it)
    handler_cpu = cpu["heavy"] + cpu["light"]
    assert 0.75 * 99 * handler_cpu <= sum(n.values()) <= 1.25 * 99 * handler_cpu + 5, (n, cpu)
    # requests wait where they sleep: the off-CPU time under handler_wait is its wall time
    # less its CPU time (a worker the load balancer gave no such request has none)
    waited = sum(r["handlers"]["wait"][1] - r["handlers"]["wait"][0] for r in workers
                 if "wait" in r["handlers"])
    assert waited > 0, workers
    off = off_cpu_seconds_in([f for f in files if f.endswith(".off_cpu.pb.gz")], "handler_wait")
    assert 0.8 * waited <= off <= 1.2 * waited, (off, waited)
    # the process that imported the application has it in its start-up import profile
    imports = import_pids_with([f for f in files if f.endswith(".import.pb.gz")],
                               "celery" if kind == "celery" else "flask")
    assert app_pids and app_pids <= imports, (app_pids, imports)
