"""The server zoo: Debian's gunicorn (sync and gthread), uWSGI (python3 plugin: libpython
arrives by dlopen) and uvicorn (--workers: multiprocessing spawn), each serving one Flask
application to wrk for SERVER_SECONDS, and a Celery prefork worker fed by a producer through
Debian's redis-server, with the daemon started first. What pyrometer reports is compared
with what each server process reports of itself (workloads/servers/sitecustomize.py):
services, exact GC counts, the handlers' CPU shares, where requests wait, start-up imports,
and a prompt stop."""
import glob
import time

import pytest

from conftest import ps_json
from daemon import Daemon, cpu_profiles
from pprof_raw import RawProfile
from servers import SERVERS, Server

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
    return {pid: e["service_name"] for pid, e in ps_json().items()}


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
