"""pyrometer run in the background for the daemon tests: stderr collected line by line, the
metrics endpoint on a free loopback port, SIGTERM/SIGHUP, the delivery summary parsed."""
import glob
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from conftest import PYROMETER

# A stored CPU profile is FROM-UNTIL.pb.gz; off-CPU and calls profiles add .off_cpu/.calls.
CPU_PROFILE = re.compile(r"\d+-\d+\.pb\.gz")


def cpu_profiles(paths):
    """The CPU profiles among stored files, sorted."""
    return sorted(p for p in paths if CPU_PROFILE.fullmatch(os.path.basename(str(p))))


def perf_fds(pid):
    """Perf-event fds (CPU sampling, uprobes) the process holds. An fd closed between the
    listing and its readlink (the daemon reads files all along) is not one."""
    n = 0
    for f in glob.glob(f"/proc/{pid}/fd/*"):
        try:
            n += os.readlink(f) == "anon_inode:[perf_event]"
        except FileNotFoundError:
            pass
    return n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """pyrometer run -v (1 s interval by default). Every instance is listed in `running`
    until stopped: conftest kills what a failed test left, so that its daemon (tracing every
    Python process on the host, call windows included) cannot skew the tests after it."""

    running = []

    def __init__(self, tmp_path, *args, interval="1", env=None, wrap=(), metrics_addr=None):
        """metrics_addr: where the configuration file (in args) puts the metrics endpoint;
        without it, a free port given as a flag."""
        self.spool = str(tmp_path / "spool")
        self.metrics_addr = metrics_addr or f"127.0.0.1:{free_port()}"
        flag = [] if metrics_addr else ["--metrics-addr", self.metrics_addr]
        self.proc = subprocess.Popen([*wrap, PYROMETER, "run", "-v", "--interval", interval,
                                      "--spool", self.spool, *flag, *args],
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        self.started = threading.Event()
        Daemon.running.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.started.wait(30):
            self.proc.kill()
            raise AssertionError("pyrometer run did not start: " + self.log())

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            if "run: ready:" in line:
                self.started.set()

    def log(self):
        return "".join(self.lines)

    def stop(self):
        """SIGTERM; returns (exit code, seconds it took)."""
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        took = time.monotonic() - t
        self.reader.join(timeout=30)  # it has read the last lines when stderr ends
        assert not self.reader.is_alive(), "stderr still open after the daemon exited"
        return rc, took

    def delivery(self):
        m = re.search(r"delivery: (\d+) profiles submitted, (\d+) carried over from the spool, "
                      r"(\d+) delivered, (\d+) rejected, (\d+) dropped \(spool cap\), "
                      r"(\d+) corrupt in spool, (\d+) lost \(spool write failed\), (\d+) failed "
                      r"attempts; (\d+) left in the spool", self.log())
        assert m, "no delivery summary in the log:\n" + self.log()
        keys = ("submitted", "carried", "delivered", "rejected", "dropped", "corrupt", "lost",
                "failed", "spooled")
        return dict(zip(keys, map(int, m.groups())))



    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.metrics_addr}/metrics", timeout=10) as r:
            return r.read().decode()

    def metric(self, name):
        """The value of an unlabelled metric."""
        m = re.search(rf"^{re.escape(name)} (\S+)$", self.metrics(), re.M)
        return float(m.group(1)) if m else None

    def wait_log(self, text, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in l for l in self.lines):
                return
            time.sleep(0.1)
        raise AssertionError(f"no '{text}' in the log:\n" + self.log())
