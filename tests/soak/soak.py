"""make soak: the daemon, started first, beside the server zoo (gunicorn sync and gthread, uWSGI,
uvicorn, a Celery worker) under mixed traffic, plus short-lived Pythons, for SOAK_SECONDS
(1800 by default). Every minute it records the daemon's resident memory and open file
descriptors; it fails if the daemon dies, stops uncleanly, or if memory or descriptors
grow after the first ten minutes (what a long run holds then is its working set): the median
of the last five samples against the first five's, and any one sample against a wider
bound. Prints the series, to be recorded with the command that made it (docs/benchmarks)."""
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
os.environ.setdefault("PYROMETER_SERVER_SECONDS", "20")  # one burst of traffic

import servers as server_zoo  # noqa: E402  (the servers and the load they get, shared with the tests)
from daemon import Daemon  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "1800"))
WARM = min(600, SECONDS // 3)  # memory and fds after this are the baseline
RSS_GROWTH = 1.10  # the median of the last minutes at most 10 % over the first's,
RSS_PEAK = 1.5  # any one sample at most 50 % over it, and
FD_GROWTH = 4  # at most this many more descriptors


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def churn(stop):
    """Short-lived Pythons, about five a second."""
    while not stop.is_set():
        subprocess.run(["/usr/bin/python3", "-c", "import json, gc; gc.collect()"],
                       env={"PATH": server_zoo.DEBIAN_PATH})
        time.sleep(0.2)


def traffic(servers, stop):
    """Bursts of load on one server after another, in random order."""
    while not stop.is_set():
        for srv in random.sample(servers, len(servers)):
            if stop.is_set():
                return
            srv.load()


def main():
    work = Path(tempfile.mkdtemp(prefix="pyrometer-soak-"))
    d = Daemon(work, "--store", str(work / "store"), "--store-cap", "200M", interval="15")
    servers, stop, series = [], threading.Event(), []
    try:
        for kind in server_zoo.SERVERS:
            (work / kind).mkdir()
            servers.append(server_zoo.Server(kind, work / kind))
        threads = [threading.Thread(target=f, args=a, daemon=True)
                   for f, a in ((churn, (stop,)), (traffic, (servers, stop)))]
        for t in threads:
            t.start()
        start = time.monotonic()
        while time.monotonic() - start < SECONDS:
            time.sleep(min(60, SECONDS - (time.monotonic() - start)))
            if d.proc.poll() is not None:
                raise SystemExit("soak: the daemon died:\n" + d.log()[-4000:])
            series.append((int(time.monotonic() - start), rss_kb(d.proc.pid), fds(d.proc.pid)))
            print(f"soak: {series[-1][0]:5d} s  rss {series[-1][1]:7d} kB  fds {series[-1][2]}",
                  flush=True)
        stop.set()
        for t in threads:
            t.join(timeout=120)
    finally:
        stop.set()
        for srv in servers:
            srv.stop()
    rc, took = d.stop()
    print(f"soak: {SECONDS} s; daemon stopped with {rc} in {took:.2f} s")
    # Growth is judged on medians: a sample can land on an interval's flush, which holds
    # every service's profile being encoded for a moment (6 MB over the working set seen at
    # one sample in a run of 30). A leak raises the median of the last samples over the
    # first; a flush's peak is bounded on its own.
    base = [s for s in series if s[0] >= WARM] or series
    k = max(1, min(5, len(base) // 3))
    rss0 = statistics.median(s[1] for s in base[:k])
    rss1 = statistics.median(s[1] for s in base[-k:])
    fd0 = base[0][2]
    peak_rss, worst_fd = max(s[1] for s in base), max(s[2] for s in base)
    print(f"soak: after {WARM} s: rss median {rss0:.0f} -> {rss1:.0f} kB ({rss1 / rss0:.3f}x) "
          f"over its first and last {k} minutes, peak {peak_rss} kB ({peak_rss / rss0:.3f}x); "
          f"fds {fd0} -> max {worst_fd}")
    failed = (rc != 0 or rss1 > RSS_GROWTH * rss0 or peak_rss > RSS_PEAK * rss0 or
              worst_fd > fd0 + FD_GROWTH)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
