"""pyrometer run as a production daemon: configuration (file, flags, errors, SIGHUP),
lifecycle (SIGTERM mid-interval), labels and service names, secrets, privileges, metrics,
and the deploy/ files, each checked by an independent tool where one exists (promtool,
systemd-analyze, go tool pprof, the kernel's own /proc/PID/status)."""
import glob
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
import yaml

from conftest import PYROMETER, ROOT, ZOO, free_port, wait_for
from daemon import KEPT_CAPS, KEPT_NAMES, Daemon, caps_of, cpu_profiles
from pprof_raw import RawProfile

BUSY = """
import sys, time
print("ready", flush=True)
end = time.monotonic() + 600
while time.monotonic() < end:
    pass
"""


class Proc:
    """A zoo interpreter running argv_tail, with files placed in its root's /tmp first."""

    def __init__(self, entry, argv_tail, files, env=None):
        root = entry["root"]
        self.paths = []
        for name, text in files.items():
            path = os.path.join(root, "tmp", name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            self.paths.append(path)
        argv = entry["argv"] + argv_tail
        if root != "/":
            argv = ["chroot", root] + argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"did not start: {line!r}")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        for p in self.paths:
            shutil.rmtree(os.path.dirname(p), ignore_errors=True) if p.endswith(
                "__init__.py") else (os.path.exists(p) and os.unlink(p))


@pytest.fixture
def procs():
    started = []

    def start(*args, **kw):
        p = Proc(*args, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def store_profiles(store, service):
    return cpu_profiles(glob.glob(os.path.join(store, service, "*.pb.gz")))


def cpu_seconds(pid):
    """CPU time the process has had (utime + stime, /proc/PID/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuLog:
    """A process's CPU time read every 0.1 s in the background: what it had between two
    wall-clock instants, for checking sample counts on a machine whose CPUs are shared."""

    def __init__(self, pid):
        self.pid, self.points, self.done = pid, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(0.1):
            self.points.append((time.time(), cpu_seconds(self.pid)))

    def stop(self):
        self.done.set()
        self.thread.join()

    def between(self, t0, t1):
        """CPU seconds from t0 to t1 (Unix seconds), interpolated between readings."""
        def at(t):
            for (a, ca), (b, cb) in zip(self.points, self.points[1:]):
                if a <= t <= b:
                    return ca + (cb - ca) * (t - a) / (b - a)
            raise AssertionError(f"no CPU reading around {t}")
        return at(t1) - at(t0)


def busy_service(procs, entry_name="py311"):
    service = f"svc-{uuid.uuid4().hex[:8]}"
    p = procs(ZOO[entry_name], [f"/tmp/{service}.py"], {f"{service}.py": BUSY},
              env={"PYROMETER_SERVICE": service})
    return p, service


# ---- configuration ----

def test_config_errors_name_file_line_and_key(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[pyrometer]\nfrequency = 49\n\ninterval = soon\n")
    r = subprocess.run([PYROMETER, "run", "-c", str(bad), "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and f"{bad}:4: interval" in r.stderr
    bad.write_text("frequency = 49\nfrequncy = 50\n")
    r = subprocess.run([PYROMETER, "run", "-c", str(bad), "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and f"{bad}:2: unknown key 'frequncy'" in r.stderr
    good = tmp_path / "good.ini"
    good.write_text("frequency = 49\nstore-cap = 2M\n")
    r = subprocess.run([PYROMETER, "run", "-c", str(good), "--check-config", "-F", "77"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "frequency = 77\n" in r.stdout          # the flag wins over the file
    assert "store-cap = 2097152\n" in r.stdout     # the file wins over the default
    assert "interval = 15\n" in r.stdout           # the default stays


def readme_defaults():
    """key -> default, from the README's settings table (| `a`, `b` | da, db | ... |)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    table = text[text.index("| key (and flag) | default | |"):].split("\n\n")[0]
    out = {}
    for row in table.splitlines()[2:]:
        keys_cell, default_cell = [c.strip() for c in row.strip().strip("|").split("|")][:2]
        keys = re.findall(r"`([a-z0-9-]+)`", keys_cell)
        defaults = [d.strip() for d in default_cell.split(", ")] if default_cell.strip() else []
        out.update({k: (defaults[i] if i < len(defaults) else "") for i, k in enumerate(keys)})
    return out


def test_the_readme_defaults_table_is_what_the_daemon_uses():
    """Every setting --check-config prints is in the README's table with the default it
    prints, and the table names no setting the daemon does not have."""
    r = subprocess.run([PYROMETER, "run", "--check-config"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    actual = dict(line.split(" = ", 1) for line in r.stdout.splitlines())
    documented = readme_defaults()
    assert set(documented) == set(actual), (set(documented) ^ set(actual))
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    for key, doc in documented.items():
        doc = doc.strip("`").removesuffix(" (off)")
        if doc == "off" or doc == "":
            doc = ""
        elif m := re.fullmatch(r"(\d+) days", doc):
            doc = str(int(m.group(1)) * 86400)
        elif m := re.fullmatch(r"(\d+)([KMG])", doc):
            doc = str(int(m.group(1)) * units[m.group(2)])
        assert actual[key] == doc, f"{key}: README says {documented[key]!r}, the daemon {actual[key]!r}"


def test_example_config_and_every_key_is_a_flag(tmp_path):
    ini = os.path.join(ROOT, "deploy", "pyrometer.ini")
    r = subprocess.run([PYROMETER, "run", "-c", ini, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    keys = [line.split(" = ")[0] for line in r.stdout.splitlines()]
    assert len(keys) > 20
    help_text = subprocess.run([PYROMETER, "run", "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    for k in keys:
        assert f"--{k} " in help_text, f"config key {k} has no flag"


# ---- lifecycle ----

def test_sigterm_mid_interval_loses_nothing(tmp_path, procs):
    p, service = busy_service(procs)
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store, interval="60")
    before = cpu_seconds(p.proc.pid)  # from "ready": start-up took 3 s under load
    time.sleep(3)
    rc, took = d.stop()
    cpu = cpu_seconds(p.proc.pid) - before  # less than 3 s on a loaded machine
    assert rc == 0 and took < 10, f"exit {rc} after {took:.1f} s"
    files = store_profiles(store, service)
    assert len(files) == 1, "the interval cut short by SIGTERM must be stored"
    prof = RawProfile(files[0])
    # the samples of the CPU the busy thread had while sampled, not fewer: none dropped at
    # SIGTERM
    samples = sum(s[0] for s in prof.samples)
    assert 0.75 * 99 * cpu - 5 <= samples <= 1.1 * 99 * cpu + 5, (samples, cpu)


def test_sighup_changes_the_frequency_and_a_broken_file_keeps_the_old(tmp_path, procs):
    p, service = busy_service(procs)
    conf = tmp_path / "pyrometer.ini"
    conf.write_text("frequency = 49\n")
    store = str(tmp_path / "store")
    cpu = CpuLog(p.proc.pid)
    d = Daemon(tmp_path, "-c", str(conf), "--store", store, interval="2")
    wait_for(lambda: len(store_profiles(store, service)) >= 2, 30, "two profiles at 49 Hz")
    assert d.metric("pyrometer_sampling_frequency_hz") == 49
    conf.write_text("frequency = 197\n")
    d.hup()
    d.wait_log("configuration reloaded")
    seen = len(store_profiles(store, service))
    wait_for(lambda: len(store_profiles(store, service)) >= seen + 2, 30, "profiles at 197 Hz")
    assert d.metric("pyrometer_sampling_frequency_hz") == 197
    conf.write_text("frequency = 197\nthis is not ini\n")
    d.hup()
    d.wait_log("reload refused")
    seen = len(store_profiles(store, service))  # a profile after the refusal: a tick later
    wait_for(lambda: len(store_profiles(store, service)) > seen, 30, "a profile after it")
    assert d.metric("pyrometer_sampling_frequency_hz") == 197
    assert d.proc.poll() is None
    rc, _ = d.stop()
    assert rc == 0
    cpu.stop()
    paths = store_profiles(store, service)
    before, after = RawProfile(paths[1]), RawProfile(paths[-2])
    assert before.period == 10**9 // 49 and after.period == 10**9 // 197
    # one busy thread: samples = frequency x the CPU seconds it had in the interval (its own
    # clock, read alongside: on a loaded machine it gets less than a CPU)
    for path, prof, hz in ((paths[1], before, 49), (paths[-2], after, 197)):
        t0, t1 = (int(x) / 1000 for x in os.path.basename(path)[:-len(".pb.gz")].split("-"))
        had = cpu.between(t0, t1)
        n = sum(s[0] for s in prof.samples)
        assert 0.8 * hz * had - 2 <= n <= 1.1 * hz * had + 2, (path, n, hz, had)


def test_sighup_reopens_each_output_on_its_own(tmp_path, procs):
    """A reload moves the store, the collector and the metrics endpoint. One that cannot open
    (a store under a regular file) is named in the log and left off; the others move. The
    next reload brings it back."""
    from collector import Collector
    p, service = busy_service(procs)
    old_c, new_c = Collector(), Collector()
    old_m, new_m = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    (tmp_path / "file").write_text("")
    old_store, new_store = str(tmp_path / "old-store"), str(tmp_path / "new-store")
    conf = tmp_path / "pyrometer.ini"

    def configure(store, collector, metrics):
        conf.write_text(f"store-enabled = true\nstore = {store}\npyroscope = {collector.url}\n"
                        f"metrics-addr = {metrics}\n")

    def pushes(c):
        return sum(1 for r in c.accepted() if service.encode() in r.body)

    try:
        configure(old_store, old_c, old_m)
        d = Daemon(tmp_path, "-c", str(conf), metrics_addr=old_m)
        wait_for(lambda: store_profiles(old_store, service) and pushes(old_c), 30,
                 "a profile in the old store and at the old collector")
        configure(tmp_path / "file" / "store", new_c, new_m)
        d.hup()
        d.wait_log("configuration reloaded")
        assert "run: reload: the local store is off until the next reload" in d.log(), d.log()
        stored, pushed = len(store_profiles(old_store, service)), pushes(old_c)
        d.metrics_addr = new_m
        # figures from the new endpoint's first scrape (it served an empty page until the
        # next tick; beside two CPU hogs a scrape hit that)
        assert d.metric("pyrometer_sampling_frequency_hz") == 99
        wait_for(lambda: pushes(new_c) >= 2, 30, "profiles at the new collector")
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{old_m}/metrics", timeout=5)
        assert len(store_profiles(old_store, service)) == stored
        assert pushes(old_c) == pushed
        assert not os.path.exists(tmp_path / "file" / "store")
        configure(new_store, new_c, new_m)
        d.hup()
        wait_for(lambda: store_profiles(new_store, service), 30, "a profile in the new store")
        assert d.proc.poll() is None
        rc, _ = d.stop()
        assert rc == 0
    finally:
        old_c.down()
        new_c.down()


def test_sd_notify_readiness_watchdog_reload_and_stop(tmp_path):
    """The systemd notification protocol, read from our own NOTIFY_SOCKET: every message the
    daemon sends, in order, with its arrival time. READY=1 first; WATCHDOG=1 every second
    (the README's promise; the unit's WatchdogSec=30 kills a daemon that misses 30 s);
    RELOADING=1 at SIGHUP, then READY=1; STOPPING=1 last."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    d = Daemon(tmp_path, "--store", str(tmp_path / "store"),
               env={**os.environ, "NOTIFY_SOCKET": path})
    got = []  # (monotonic seconds, message)

    def until(word, count=1):
        """Reads until `count` more messages `word` have come."""
        seen = 0
        while seen < count:
            got.append((time.monotonic(), sock.recv(4096).decode()))
            seen += got[-1][1] == word

    try:
        until("READY=1")
        until("WATCHDOG=1", 2)  # what queued while Daemon() waited for the log's "ready"
        timed = len(got)
        until("WATCHDOG=1", 6)  # each read as it comes
        d.hup()
        until("RELOADING=1")
        until("READY=1")  # the reload is done
    finally:
        rc, _ = d.stop()
    assert rc == 0
    until("STOPPING=1")
    sock.settimeout(0.5)  # the daemon has exited: anything left is already queued
    try:
        while True:
            got.append((time.monotonic(), sock.recv(4096).decode()))
    except socket.timeout:
        pass
    sock.close()
    words = [m for _, m in got]
    assert words[0] == "READY=1" and words[-1] == "STOPPING=1", words
    assert set(words) == {"READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"}, words
    after = words.index("RELOADING=1")
    assert "READY=1" in words[after:], words
    # a tick a second: 6 watchdogs in a row, each 0.5-3 s after the one before (a busy
    # machine delays a tick, the loop never sends two at once)
    times = [t for t, m in got[timed - 1:after] if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) >= 5 and all(0.5 <= g <= 3 for g in gaps), gaps


# ---- labels and names ----

def test_service_names_and_labels(tmp_path, procs):
    tag = uuid.uuid4().hex[:6]
    py311, py315 = ZOO["py311"], ZOO["py315"]
    procs(py311, ["-m", f"pkg{tag}.worker"], {f"pkg{tag}/__init__.py": "",
                                              f"pkg{tag}/worker.py": BUSY},
          env={"PYTHONPATH": "/tmp"})
    procs(py315, [f"/tmp/billing{tag}.py", "--port", "8000"], {f"billing{tag}.py": BUSY})
    procs(py311, ["/tmp/gunicorn", "-w", "2", f"shop{tag}.wsgi:app"], {"gunicorn": BUSY})
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store)
    want = {f"pkg{tag}": "3.11", f"billing{tag}": "3.15", f"shop{tag}": "3.11"}
    wait_for(lambda: all(store_profiles(store, s) for s in want), 30, f"profiles of {want}")
    d.stop()
    for service, version in want.items():
        text = subprocess.run(["go", "tool", "pprof", "-raw", store_profiles(store, service)[0]],
                              capture_output=True, text=True, timeout=120).stdout
        assert f"Comment: service_name={service}" in text
        assert re.search(rf"Comment: python_version={re.escape(version)}\.\d+", text), text[:400]
        assert "Comment: host=" in text
        assert "container_id=" not in text  # not in a container


def test_secrets_in_argv_and_environment_go_nowhere(tmp_path, procs, collector_down):
    secret_argv, secret_env = f"S3CRET-ARGV-{uuid.uuid4().hex}", f"S3CRET-ENV-{uuid.uuid4().hex}"
    procs(ZOO["py311"], ["/tmp/leaky.py", f"--db-password={secret_argv}"], {"leaky.py": BUSY},
          env={"API_TOKEN": secret_env})
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store, "--store-enabled", "true",
               "--pyroscope", collector_down)
    wait_for(lambda: store_profiles(store, "leaky") and glob.glob(d.spool + "/*.spool"), 30,
             "a stored and a spooled profile of leaky.py")
    metrics = d.metrics()
    d.stop()
    blobs = [d.log().encode(), metrics.encode()]
    for path in glob.glob(store + "/**/*.pb.gz", recursive=True):
        blobs.append(gzip.decompress(open(path, "rb").read()))
    spooled = glob.glob(d.spool + "/*.spool")
    assert spooled, "the collector was down: profiles should be spooled"
    for path in spooled:
        raw = open(path, "rb").read()
        blobs += [raw, gzip.decompress(raw[raw.index(b"\x1f\x8b"):])]
    assert any(b"leaky" in b for b in blobs[2:]), "the workload should have been profiled"
    for b in blobs:
        assert secret_argv.encode() not in b and secret_env.encode() not in b


@pytest.fixture
def collector_down():
    """A loopback URL nothing listens on."""
    from daemon import free_port
    return f"http://127.0.0.1:{free_port()}"


# ---- privileges and metrics ----

def test_capabilities_after_start_are_the_documented_set(tmp_path):
    d = Daemon(tmp_path, "--store", str(tmp_path / "store"))
    try:
        pid = d.proc.pid
        assert caps_of(pid, "CapEff") == KEPT_CAPS
        assert caps_of(pid, "CapPrm") == KEPT_CAPS
        assert caps_of(pid, "CapBnd") == KEPT_CAPS
        assert caps_of(pid, "CapInh") == 0 and caps_of(pid, "CapAmb") == 0
        with open(f"/proc/{pid}/status") as f:
            assert re.search(r"^NoNewPrivs:\s+1$", f.read(), re.M)
    finally:
        d.stop()
    readme = open(os.path.join(ROOT, "README.md")).read()
    for name in KEPT_NAMES:
        assert f"CAP_{name}" in readme


def test_sigterm_while_loading_stops_between_loads(tmp_path):
    """A stop during start-up is answered before the next BPF object loads (the README's
    promise: within 5 s), not after every capability has loaded and attached."""
    p = subprocess.Popen([PYROMETER, "run", "--store", str(tmp_path / "store"),
                          "--spool", str(tmp_path / "spool"), "--metrics-addr", "off"],
                         stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in p.stderr:
            lines.append(line)
            if "loaded the discover BPF programs" in line:  # the first object of several
                p.send_signal(signal.SIGTERM)
                break
        rc = p.wait(timeout=5)
    finally:
        p.kill()
    log = "".join(lines) + p.stderr.read()
    assert rc == 0, log
    assert "run: stop requested during start-up, before " in log, log
    assert "run: ready:" not in log, log


def test_metrics_answer_starting_until_ready_then_whole_pages(tmp_path):
    """The endpoint listens before the BPF programs load. Until the daemon is ready it
    answers 503 "starting"; from then on every scrape is a whole page, never an empty 200
    (which a scraper takes for a target without series)."""
    addr = f"127.0.0.1:{free_port()}"
    d = subprocess.Popen([PYROMETER, "run", "--store", str(tmp_path / "store"),
                          "--spool", str(tmp_path / "spool"), "--metrics-addr", addr],
                         stderr=subprocess.PIPE, text=True)
    ready = threading.Event()
    threading.Thread(target=lambda: ready.set() if any("run: ready:" in l for l in d.stderr)
                     else None, daemon=True).start()
    answers = []  # (status, ready already logged before the request was sent, body)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and len([a for a in answers if a[0] == 200]) < 3:
            # Read before sending: an answer made before "ready" may arrive after it is logged.
            was_ready = ready.is_set()
            try:
                with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
                    answers.append((r.status, was_ready, r.read().decode()))
            except urllib.error.HTTPError as e:
                answers.append((e.code, was_ready, e.read().decode()))
            except OSError:
                pass  # not listening yet
            time.sleep(0.01)
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=30)
    statuses = [a[0] for a in answers]
    assert 503 in statuses and statuses[-1] == 200, statuses
    first_200 = statuses.index(200)
    assert set(statuses[:first_200]) == {503} and set(statuses[first_200:]) == {200}, statuses
    assert all(body == "starting\n" for status, _, body in answers if status == 503)
    assert all(was_ready is False for status, was_ready, _ in answers if status == 503)
    for status, _, body in answers[first_200:]:
        assert re.search(r"^pyrometer_sampling_frequency_hz 99$", body, re.M), body[:500]


def test_bpf_costs_on_metrics_match_inspect(tmp_path):
    """pyrometer_bpf_verified_insns on /metrics is what the kernel said when the daemon loaded
    each program, and inspect --bpf, loading the same objects, hears the same figures."""
    r = subprocess.run([PYROMETER, "inspect", "--bpf"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    inspected = {f"{o['object']}/{o['program']}": o for o in map(json.loads, r.stdout.splitlines())}
    plain = {p.removesuffix("_nopreempt") for p in inspected}
    assert {"cpu/on_cpu_sample", "cpu/on_switch", "gc/on_gc_done", "imports/on_import_done",
            "calls/on_return", "discover/on_exec"} <= plain, sorted(inspected)
    # uprobe programs run with preemption off wherever the kernel can turn it off (on 7.x a
    # preempted one shares its per-CPU private stack with the next task entering it)
    btf = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                         capture_output=True, text=True, check=True).stdout
    guarded = "FUNC 'bpf_preempt_disable'" in btf
    uprobes = [p for p in inspected if p.split("/")[0] in ("gc", "imports", "calls")
               and p not in ("calls/on_thread_exit", "calls/flush_threads", "calls/floor_count")]
    assert uprobes and all(p.endswith("_nopreempt") == guarded for p in uprobes), \
        (guarded, sorted(uprobes))
    d = Daemon(tmp_path, "--store", str(tmp_path / "store"))
    try:  # the endpoint publishes the daemon's figures once an interval
        wait_for(lambda: "pyrometer_bpf_verified_insns{" in d.metrics(), 30, "BPF figures")
        text = d.metrics()
    finally:
        d.stop()
    served = dict(re.findall(r'^pyrometer_bpf_verified_insns\{program="([^"]+)"\} (\d+)$', text,
                             re.M))
    loads = dict(re.findall(r'^pyrometer_bpf_load_seconds\{program="([^"]+)"\} (\S+)$', text,
                            re.M))
    # the daemon loads every object but calls (no call windows here)
    want = {p for p in inspected if not p.startswith("calls/")}
    assert set(served) == want and set(loads) == want, (sorted(served), sorted(want))
    for prog, n in served.items():
        assert int(n) == inspected[prog]["verified_insns"] > 0, (prog, n, inspected[prog])
        assert 0 < float(loads[prog]) < 60, (prog, loads[prog])


def test_sigint_stops_like_sigterm(tmp_path, procs):
    """SIGINT (Ctrl-C in a terminal) is a stop like SIGTERM: exit 0, the interval so far
    flushed to the store, the delivery summary logged."""
    p, service = busy_service(procs)
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store, interval="60")
    wait_for(lambda: d.metric("pyrometer_samples_total"), 30, "samples")
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(timeout=30) == 0, d.log()
    d.reader.join(timeout=30)
    assert len(store_profiles(store, service)) == 1, d.log()
    assert re.search(r"run: stopping after [1-9]\d* profiles", d.log()), d.log()


@pytest.mark.parametrize("key,what", [("gc", "GC tracing"), ("imports", "import profiles"),
                                      ("off-cpu", "off-CPU profiles")])
def test_a_reload_says_what_needs_a_restart(tmp_path, key, what):
    """Turning a capability on or off at SIGHUP is refused with its reason (its programs and
    privileges are settled at start); the rest of the file still applies."""
    conf = tmp_path / "pyrometer.ini"
    conf.write_text(f"{key} = true\nfrequency = 49\n")
    d = Daemon(tmp_path, "-c", str(conf), "--store", str(tmp_path / "store"))
    conf.write_text(f"{key} = false\nfrequency = 97\n")
    d.hup()
    d.wait_log("configuration reloaded")
    assert f"run: turning {what} on or off takes a restart; not changed" in d.log(), d.log()
    assert d.metric("pyrometer_sampling_frequency_hz") == 97
    rc, _ = d.stop()
    assert rc == 0


def test_a_log_message_is_cut_at_2_KiB_and_stays_one_line():
    """README: a message is cut at 2 KiB (ending in "...") and written escaped, one line."""
    long_arg = "y" * 5000
    r = subprocess.run([PYROMETER, "run", long_arg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr[:200]
    message = r.stderr.rstrip("\n").removeprefix("pyrometer: error: ")
    assert len(message) == 2047 and message.endswith("y...")
    assert message.startswith("run: unexpected argument 'yyy")
    hostile = "\x1b[31m\r" * 1000  # escape sequences and carriage returns
    r = subprocess.run([PYROMETER, "run", hostile], capture_output=True, text=True, timeout=30)
    line = r.stderr.rstrip("\n")
    assert r.stderr.count("\n") == 1 and "\x1b" not in line and "\r" not in line, line[:200]
    assert line.endswith("..."), line[-100:]
    assert "\\x1b[31m\\x0d" in line  # escaped, readable


def test_starting_without_privileges_says_what_is_missing():
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "--inh-caps=-all", PYROMETER, "run"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert ("'run' needs root or CAP_SYS_PTRACE, CAP_PERFMON, CAP_BPF "
            "(missing: CAP_SYS_PTRACE, CAP_PERFMON, CAP_BPF)") in r.stderr, r.stderr


def test_self_metrics_pass_promtool(tmp_path, procs):
    from collector import Collector
    p, service = busy_service(procs)
    c = Collector()  # the delivery metrics are served with a Pyroscope sink
    try:
        d = Daemon(tmp_path, "--store", str(tmp_path / "store"), "--pyroscope", c.url,
                   "--calls-window", "1", "--calls-every", "2")
        wait_for(lambda: (d.metric("pyrometer_profiles_total") or 0) >= 1 and
                 (d.metric("pyrometer_call_windows_total") or 0) >= 1, 30,
                 "a profile and a call window")
        text = d.metrics()
        d.stop()
    finally:
        c.down()
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # every metric README names is served, and every metric served is named in README
    served = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    readme = open(os.path.join(ROOT, "README.md")).read()
    named = {re.sub(r"_(count|sum|bucket)$", "", n) for n in
             re.findall(r"`((?:pyrometer|python)_[a-z0-9_]+)", readme)
             if not n.endswith("_")}  # `python_gc_*` names a family of names
    named -= {"python_version"}  # a label
    assert named - served == set(), f"named in README, not served: {sorted(named - served)}"
    assert served - named == set(), f"served, not in README: {sorted(served - named)}"
    assert float(re.search(r"^pyrometer_samples_total (\S+)", text, re.M).group(1)) > 0


# ---- deploy/ ----

def test_systemd_unit_verifies(tmp_path):
    unit = open(os.path.join(ROOT, "deploy", "pyrometer.service")).read()
    unit = unit.replace("/usr/local/bin/pyrometer", os.path.abspath(PYROMETER))
    path = tmp_path / "pyrometer.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "pyrometer.service" not in r.stderr, r.stderr
    bounding = set(re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M).group(1).split())
    assert {f"CAP_{n}" for n in KEPT_NAMES} <= bounding


def test_prometheus_rules_pass_promtool():
    rules = sorted(glob.glob(os.path.join(ROOT, "deploy", "prometheus-*.yml")))
    assert len(rules) == 3
    r = subprocess.run(["promtool", "check", "rules", *rules], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def promtool_test_rules(tmp_path, rules, test_text):
    """Runs promtool's rule unit tests TEST_TEXT (RULES stands for deploy/RULES)."""
    test = tmp_path / "rules-test.yml"
    test.write_text(test_text.replace("RULES", os.path.join(ROOT, "deploy", rules)))
    r = subprocess.run(["promtool", "test", "rules", str(test)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


CAPABILITY_RULE_TEST = """
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'pyrometer_capability_available{instance="h",capability="cpu",reason="WHY"}'
        values: '0x30'
      - series: 'pyrometer_capability_available{instance="h",capability="calls",reason="off in the configuration"}'
        values: '0x30'
      - series: 'pyrometer_capability_available{instance="h",capability="gc",reason=""}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 10m
        alertname: PyrometerCapabilityOff
        exp_alerts: []
      - eval_time: 20m
        alertname: PyrometerCapabilityOff
        exp_alerts:
          - exp_labels: {severity: info, instance: h, capability: cpu, reason: "WHY"}
            exp_annotations:
              summary: "pyrometer on h runs without cpu: WHY"
"""


def test_capability_off_alert(tmp_path):
    """A capability off for 15 min for any reason but the configuration alerts, with the
    reason the daemon gives (the kernel matrix's 5.10 reason as the example)."""
    why = "kernel 5.10.0-46-cloud-amd64 lacks task storage (Linux 5.11), bpf_loop (Linux 5.17)"
    promtool_test_rules(tmp_path, "prometheus-agent-rules.yml",
                        CAPABILITY_RULE_TEST.replace("WHY", why))


GIL_RULE_TEST = """
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'python_gil_wait_seconds_total{instance="h",service_name="api"}'
        values: '0+48x40'
      - series: 'python_gil_wait_seconds_total{instance="h2",service_name="api"}'
        values: '0+6x40'
      - series: 'python_gil_wait_seconds_total{instance="h",service_name="batch"}'
        values: '0+24x40'
    alert_rule_test:
      - eval_time: 8m
        alertname: PythonGilContention
        exp_alerts: []
      - eval_time: 30m
        alertname: PythonGilContention
        exp_alerts:
          - exp_labels: {severity: info, service_name: api}
            exp_annotations:
              summary: "threads of api wait 0.90 s per second for the GIL"
"""


def test_gil_contention_alert(tmp_path):
    """GIL waits above half a thread per second for 10 min alert per service, summed over
    hosts (api: 0.8 + 0.1 s/s fires; batch: 0.4 s/s does not)."""
    promtool_test_rules(tmp_path, "prometheus-gil-rules.yml", GIL_RULE_TEST)


def test_daemonset_and_dockerfile_match_the_binary(tmp_path):
    docs = list(yaml.safe_load_all(open(os.path.join(ROOT, "deploy", "kubernetes",
                                                     "daemonset.yaml"))))
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    caps = set(spec["containers"][0]["securityContext"]["capabilities"]["add"])
    assert KEPT_NAMES <= caps
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    ini = tmp_path / "k8s.ini"
    ini.write_text(cm["data"]["pyrometer.ini"])
    r = subprocess.run([PYROMETER, "run", "-c", str(ini), "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # Every shared library the binary links comes from a package the runtime image installs.
    docker = open(os.path.join(ROOT, "deploy", "Dockerfile")).read()
    runtime = docker.split("\nFROM debian:bookworm-slim\n")[1]
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                        subprocess.run(["readelf", "-d", PYROMETER], capture_output=True,
                                       text=True).stdout)
    paths = dict(re.findall(r"^\s*(\S+) => (/\S+)", subprocess.run(
        ["ldd", PYROMETER], capture_output=True, text=True).stdout, re.M))
    assert len(needed) > 5
    for lib in (paths[n] for n in needed):
        owner = package_of(lib)
        assert owner, f"no package owns {lib}"
        if owner == "libc6":  # in the base image
            continue
        assert re.search(rf"\b{re.escape(owner)}\b", runtime), f"{lib} ({owner}) not installed"


def package_of(path):
    """The Debian package that ships path. On a merged /usr, dpkg knows a library by the
    name its package installed it under (/lib/... or /usr/lib/..., the link or the file), so
    each of those is asked."""
    real = os.path.realpath(path)
    names = {path, real}
    for p in list(names):
        names.add(p[len("/usr"):] if p.startswith("/usr/") else "/usr" + p)
    for name in sorted(names):
        r = subprocess.run(["dpkg", "-S", name], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0]
    return None
