"""pyrometer run in the background for the daemon tests: stderr collected line by line, the
metrics endpoint on a free loopback port, SIGTERM/SIGHUP, the delivery summary parsed."""
import glob
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

from conftest import PYROMETER, ROOT, free_port

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
        t = self.stopped_at = time.monotonic()
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


# The capabilities the daemon keeps after start-up (README, "Privileges"): DAC_READ_SEARCH
# (2), SYS_PTRACE (19), PERFMON (38), BPF (39), CHECKPOINT_RESTORE (40).
KEPT_CAPS = (1 << 2) | (1 << 19) | (1 << 38) | (1 << 39) | (1 << 40)
KEPT_NAMES = {"DAC_READ_SEARCH", "SYS_PTRACE", "PERFMON", "BPF", "CHECKPOINT_RESTORE"}


def caps_of(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(rf"^{field}:\s+([0-9a-f]+)$", f.read(), re.M).group(1), 16)


# ---- as deployed ----

UNIT = os.path.join(ROOT, "deploy", "pyrometer.service")


def unit_caps():
    """setpriv arguments giving a process the unit's CapabilityBoundingSet, nothing more."""
    line = next(l for l in open(UNIT) if l.startswith("CapabilityBoundingSet="))
    caps = [c.strip().lower().removeprefix("cap_") for c in line.split("=", 1)[1].split()]
    assert caps, "the unit names no capability"
    keep = ",".join("+" + c for c in caps)
    return ["setpriv", f"--bounding-set=-all,{keep}", "--inh-caps=-all"]


def daemon_as_deployed(tmp_path, *args):
    d = Daemon(tmp_path, "--store", str(tmp_path / "store"), *args, wrap=unit_caps())
    bnd = int(re.search(r"^CapBnd:\s+(\w+)", open(f"/proc/{d.proc.pid}/status").read(),
                        re.M).group(1), 16)
    assert bnd & (1 << 21) == 0, "the daemon kept CAP_SYS_ADMIN after start"
    return d


def bpf_ids(pid):
    """(kind, id) of every BPF map, program and link the process holds."""
    ids = set()
    for info in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            text = open(info).read()
        except OSError:
            continue
        for kind in ("map", "prog", "link"):
            m = re.search(rf"^{kind}_id:\s+(\d+)$", text, re.M)
            if m:
                ids.add((kind, int(m.group(1))))
    return ids


def stop_leaving_no_trace(d):
    """SIGTERM; asserts the daemon ends within 5 s and, once its uprobe broker has removed
    the uprobes handed to it, that no map, program or link of theirs is left."""
    broker = [int(p) for p in open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children").read().split()
              if open(f"/proc/{p}/comm").read().strip() == "pyrometer-uprob"]
    held = bpf_ids(d.proc.pid) | {i for b in broker for i in bpf_ids(b)}
    assert any(k == "link" for k, _ in held), held
    rc, secs = d.stop()
    assert rc == 0 and secs < 5, (rc, secs, d.log()[-2000:])
    end = time.monotonic() + 60
    while any(os.path.exists(f"/proc/{b}") for b in broker):
        assert time.monotonic() < end, "the broker never finished removing the uprobes"
        time.sleep(0.1)
    left = [(k, i) for k, i in held
            if subprocess.run(["bpftool", k, "show", "id", str(i)], capture_output=True).returncode == 0]
    assert not left, left
    return secs


def gc_count(d, service):
    """Collections counted for the service, all generations."""
    text = d.metrics()
    return sum(float(v) for v in re.findall(
        rf'^python_gc_pause_seconds_count{{service_name="{re.escape(service)}",'
        r'generation="\d+"\} (\S+)$', text, re.M))


def availability(d, service):
    m = re.search(rf'^python_gc_tracing_available{{service_name="{re.escape(service)}"'
                  r'(?:,reason="([^"]*)")?} (\d)$', d.metrics(), re.M)
    return (int(m.group(2)), m.group(1)) if m else None


def daemon_maps(pid):
    """name -> map id of the BPF maps the daemon holds."""
    ids = set()
    for info in glob.glob(f"/proc/{pid}/fdinfo/*"):
        try:
            m = re.search(r"^map_id:\s+(\d+)$", open(info).read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    out = {}
    for i in ids:
        show = json.loads(subprocess.run(["bpftool", "-j", "map", "show", "id", str(i)],
                                         capture_output=True, text=True, check=True).stdout)
        out[show["name"]] = i
    return out


def key_pids(map_id):
    dump = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)],
                                     capture_output=True, text=True, check=True).stdout)
    pids = []
    for e in dump:
        key = e["formatted"]["key"] if "formatted" in e else e["key"]
        if isinstance(key, dict) and "pid" not in key:
            key = key["k"]  # gc_hist: the gc key leads it
        pids.append(key["pid"] if isinstance(key, dict) else
                    key if isinstance(key, int) else int.from_bytes(bytes(int(b, 16) for b in key[:4]), "little"))
    return pids
