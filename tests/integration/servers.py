"""The server zoo, shared by tests/integration/test_servers.py and make soak: Debian's gunicorn
(sync and gthread), uWSGI (python3 plugin: libpython arrives by dlopen), uvicorn (--workers)
and a Celery prefork worker fed through Debian's redis-server, each serving one Flask
application (workloads/servers/) and driven by a real load generator (wrk, or the Celery
producer)."""
import glob
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid

from conftest import free_port

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
    # threads for the stats writer. The master has one too, so uWSGI's fork must take the
    # GIL first (PyOS_BeforeFork) and the worker run PyOS_AfterFork_Child, which runs its
    # fork hook: --py-call-uwsgi-fork-hooks. With --py-call-osafterfork instead, a worker
    # forked while the master's thread held the GIL hung at its first take of it.
    "uwsgi": lambda mod, port: [
        "/usr/bin/uwsgi", "--plugin", "python3", "--http-socket", f"127.0.0.1:{port}",
        "--module", f"{mod}:app", "--master", "--processes", "2", "--enable-threads",
        "--py-call-uwsgi-fork-hooks", "--die-on-term"],
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
            stderr=subprocess.STDOUT, env={**self.env, "SRV_STATS": str(self.stats)},
            start_new_session=True)  # a group of its own: stop() can kill every process of it
        end = time.monotonic() + 60
        try:
            while time.monotonic() < end:
                assert self.proc.poll() is None, open(self.log_path).read()
                if self.ready():
                    return
                time.sleep(0.2)
            raise AssertionError(f"{kind} did not start: " + open(self.log_path).read())
        except BaseException:  # the caller never gets an object to stop()
            self.stop()
            raise

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
        try:  # workers a server did not take down with it (a uWSGI worker hung at its fork)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
