"""Untrusted input to the daemon's configuration: files that are not files, values that
would become HTTP headers or log lines of their own, addresses that cannot be served,
secrets that would be cut or printed. Each is refused within 5 s with a non-zero exit and
a one-line reason."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import PYROMETER
from daemon import Daemon
from hostile import repeat_probe


@pytest.fixture
def fifo(tmp_path):
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    return path


def check(*args):
    # timeout 5: a FIFO or /dev/zero that is waited on fails the test by timing out
    return subprocess.run([PYROMETER, "run", "--check-config", *args], capture_output=True,
                          text=True, timeout=5)


def refused(r, reason):
    lines = r.stderr.splitlines()
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and reason in lines[0], r.stderr
    assert "X-Injected" not in r.stdout


@pytest.mark.parametrize("case,reason", [
    ("config-dev-zero", "not a regular file"),
    ("config-fifo", "not a regular file"),
    ("config-directory", "not a regular file"),
    ("config-over-1MiB", "config: cannot read {tmp}/big.ini: too large"),
    ("config-with-NUL", "config: {tmp}/nul.ini is not text (it holds a NUL byte)"),
    ("config-empty-choice", "config: {tmp}/c.ini:1: log-level: must be one of: error warn info debug"),
    ("config-key-twice", "config: {tmp}/c.ini:3: 'spool' is set twice (an indented line "
                         "continues the key above it)"),
    ("config-interval-range", "config: {tmp}/c.ini:1: interval: must be a number from 1 to 3600"),
    ("flag-log-level", "run: --log-level verbose: must be one of: error warn info debug"),
    ("tenant-crlf", "control characters"),
    ("user-crlf", "config: tenant, basic-auth-user and service-env must not hold control "
                  "characters"),
    ("service-env-newline", "config: tenant, basic-auth-user and service-env must not hold "
                            "control characters"),
    ("url-crlf", "control characters"),
    ("url-without-host", "no host"),
    ("metrics-port-99999", "port from 1 to 65535"),
    ("token-file-fifo", "not a regular file"),
    ("token-file-10mb", "too large"),
    ("password-file-over-4KiB", "config: password-file {tmp}/pw-4097: too large"),
    ("password-file-readable-by-others",
     "config: password-file {tmp}/pw-open: readable by others (chmod 600 it)"),
])
def test_run_refuses_hostile_settings(case, reason, fifo, tmp_path):
    """Each refusal the README lists, with the line a user reads (check() times out on a
    file that is waited on or a loader that loops)."""
    big = tmp_path / "token"
    big.write_text("t" * (10 << 20))
    big.chmod(0o600)
    (tmp_path / "big.ini").write_text("#" * (1 << 20) + "\n")  # 1 MiB and a byte
    (tmp_path / "nul.ini").write_bytes(b"frequency = 49\0\n")
    (tmp_path / "c.ini").write_text({
        "config-empty-choice": "log-level =\n",
        "config-key-twice": "frequency = 49\nspool = /var/tmp/a\n  store = /var/tmp/b\n",
        "config-interval-range": "interval = 0.5\n",
    }.get(case, ""))
    secret(tmp_path / "pw-4097", 4097, 0o600)
    secret(tmp_path / "pw-open", 8, 0o644)
    pyroscope = ["--pyroscope", "http://127.0.0.1:1"]
    args = {
        "config-dev-zero": ["-c", "/dev/zero"],
        "config-fifo": ["-c", fifo],
        "config-directory": ["-c", str(tmp_path)],
        "config-over-1MiB": ["-c", str(tmp_path / "big.ini")],
        "config-with-NUL": ["-c", str(tmp_path / "nul.ini")],
        "config-empty-choice": ["-c", str(tmp_path / "c.ini")],
        "config-key-twice": ["-c", str(tmp_path / "c.ini")],
        "config-interval-range": ["-c", str(tmp_path / "c.ini")],
        "flag-log-level": ["--log-level", "verbose"],
        "tenant-crlf": [*pyroscope, "--tenant", "t\r\nX-Injected: yes"],
        "user-crlf": [*pyroscope, "--basic-auth-user", "u\r\nX-Injected: yes",
                      "--password-file", str(tmp_path / "pw-open")],
        "service-env-newline": ["--service-env", "PYROMETER_SERVICE\nX-Injected"],
        "url-crlf": ["--pyroscope", "http://127.0.0.1:1/\r\nX-Injected: yes"],
        "url-without-host": ["--pyroscope", "http://"],
        "metrics-port-99999": ["--metrics-addr", "127.0.0.1:99999"],
        "token-file-fifo": [*pyroscope, "--token-file", fifo],
        "token-file-10mb": [*pyroscope, "--token-file", str(big)],
        "password-file-over-4KiB": [*pyroscope, "--basic-auth-user", "u", "--password-file",
                                    str(tmp_path / "pw-4097")],
        "password-file-readable-by-others": [*pyroscope, "--basic-auth-user", "u",
                                             "--password-file", str(tmp_path / "pw-open")],
    }[case]
    refused(check(*args), reason.format(tmp=tmp_path))


def secret(path, size, mode):
    path.write_text("p" * size)
    path.chmod(mode)


def test_the_limits_themselves_are_accepted(tmp_path):
    """The other side of each limit: a config of exactly 1 MiB and a password file of exactly
    4 KiB load (a limit off by one would refuse a file the README allows)."""
    ini = tmp_path / "full.ini"
    body = "frequency = 49\n"
    ini.write_text(body + "#" * ((1 << 20) - len(body) - 1) + "\n")
    assert ini.stat().st_size == 1 << 20
    secret(tmp_path / "pw-4096", 4096, 0o600)
    r = check("-c", str(ini), "--pyroscope", "http://127.0.0.1:1", "--basic-auth-user", "u",
              "--password-file", str(tmp_path / "pw-4096"))
    assert r.returncode == 0, r.stderr
    assert "frequency = 49\n" in r.stdout


@pytest.mark.parametrize("what", ["fifo", "/dev/zero", "directory"])
def test_inspect_refuses_what_is_not_a_regular_file(what, fifo, tmp_path):
    path = {"fifo": fifo, "/dev/zero": "/dev/zero", "directory": str(tmp_path)}[what]
    r = subprocess.run([PYROMETER, "inspect", path], capture_output=True, text=True, timeout=5)
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "not a regular file" in r.stderr


def test_a_password_in_a_url_is_never_shown(tmp_path):
    url = "http://user:s3cr3t-pw@127.0.0.1:9/"
    r = check("--pyroscope", url)
    assert r.returncode == 0, r.stderr
    assert "s3cr3t-pw" not in r.stdout + r.stderr
    assert "pyroscope = http://user:***@127.0.0.1:9/" in r.stdout
    d = Daemon(tmp_path, "--pyroscope", url, "--alertmanager", "http://am:s3cr3t-pw@127.0.0.1:9")
    rc, _ = d.stop()
    assert rc == 0
    assert "s3cr3t-pw" not in d.log(), d.log()
    assert "user:***@127.0.0.1:9" in d.log()


def test_a_config_behind_a_symlink_is_read(tmp_path):
    """Kubernetes mounts a ConfigMap's keys as symlinks: those stay readable."""
    real = tmp_path / "real.ini"
    real.write_text("frequency = 49\n")
    link = tmp_path / "pyrometer.ini"
    link.symlink_to(real)
    r = check("-c", str(link))
    assert r.returncode == 0 and "frequency = 49" in r.stdout, r.stderr


def test_inspect_of_64_mib_of_notes_stays_under_64_mib(tmp_path):
    """A container image's binary with a 64 MiB .note.stapsdt (about 1.2 million notes of
    one probe): refused unread, so inspecting it costs what inspecting CPython costs (the
    binary before this took 1 GB)."""
    binary = repeat_probe("/usr/bin/python3.11", str(tmp_path / "python3.11-notes"),
                          copies=(64 << 20) // 56)
    assert os.path.getsize(binary) > 64 << 20
    # a child of its own, so that ru_maxrss is inspect's alone
    probe = ("import json, resource, subprocess, sys; "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(json.dumps([r.returncode, r.stdout, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    out = subprocess.run(["/usr/bin/python3", "-c", probe, PYROMETER, "inspect", binary],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rc, report, maxrss_kib = json.loads(out)
    assert rc == 0
    assert maxrss_kib <= 64 * 1024, maxrss_kib
    info = json.loads(report)
    assert "larger than 1 MiB" in info["unavailable"]["gc"], info
    assert "cpu" in info["capabilities"]


# ---- what targets choose: their comm, what sits at their binary's path ----

COMM = ("import ctypes, time; "
        "ctypes.CDLL(None).prctl(15, b'\\x1b[2Jev\\nrow', 0, 0, 0); "
        "print('ready', flush=True); time.sleep(60)")


def test_ps_escapes_what_a_target_puts_in_its_comm():
    p = subprocess.Popen(["/usr/bin/python3.11", "-c", COMM], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        out = subprocess.run([PYROMETER, "ps"], capture_output=True, text=True,
                             timeout=30).stdout
        rows = [l for l in out.splitlines() if l.split()[:1] == [str(p.pid)]]
        assert len(rows) == 1, out
        assert "\x1b" not in out and "\\x1b[2Jev\\nrow" in rows[0], rows
    finally:
        p.kill()


@pytest.mark.parametrize("planted", ["/dev/null", "fifo"])
def test_a_device_or_fifo_planted_at_the_interpreter_path_is_not_opened(planted, tmp_path):
    """Inside its own mount namespace a target puts a device or a FIFO over its interpreter's
    path: pyrometer must not open it, and still finds the interpreter through
    /proc/PID/map_files (the binary before this left the process out)."""
    py = tmp_path / "py"
    shutil.copy("/usr/bin/python3.11", py)
    over = planted
    if planted == "fifo":
        over = str(tmp_path / "fifo")
        os.mkfifo(over)
    # mounted once the interpreter runs (it has said "ready" through the pipe), not before
    script = (f"{py} -c 'import time; print(\"ready\", flush=True); time.sleep(60)' | "
              f"{{ read line; echo $line; mount --bind {over} {py} && echo mounted; cat; }}")
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        assert p.stdout.readline().strip() == "mounted"
        ps = {e["pid"]: e for e in map(json.loads, subprocess.run(
            [PYROMETER, "ps", "--json"], capture_output=True, text=True, timeout=30,
            check=True).stdout.splitlines())}
        mine = [e for e in ps.values() if e["interpreter_path"] == str(py)]
        assert len(mine) == 1, ps
    finally:
        subprocess.run(["pkill", "-f", str(py)])
        p.wait(timeout=10)


def test_services_never_share_a_store_directory(tmp_path):
    tag = os.urandom(3).hex()
    names = [f".svc-{tag}", f"/svc-{tag}", f"_svc-{tag}", f"%2Fsvc-{tag}"]
    procs = [subprocess.Popen(["/usr/bin/python3.11", "-c",
                               "import time\nwhile True: pass"],
                              env={**os.environ, "PYROMETER_SERVICE": n}) for n in names]
    store = tmp_path / "store"
    try:
        d = Daemon(tmp_path, "--store", str(store))
        end = time.monotonic() + 30
        while time.monotonic() < end:
            dirs = [x for x in os.listdir(store) if tag in x] if store.exists() else []
            if len(dirs) == len(names) and all(os.listdir(store / x) for x in dirs):
                break
            time.sleep(0.2)
        d.stop()
    finally:
        for p in procs:
            p.kill()
    dirs = sorted(x for x in os.listdir(store) if tag in x)
    # the README's rule: "/", "%", a leading "." and control bytes are written %XX
    def encoded(name):
        return "".join(f"%{ord(c):02X}" if c in "/%" or ord(c) < 32 or (c == "." and i == 0)
                       else c for i, c in enumerate(name))
    assert dirs == sorted(encoded(n) for n in names), dirs


FDS_THEN_EXEC = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
for _ in range(1100):
    os.set_inheritable(os.open("/dev/null", os.O_RDONLY), True)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_metrics_are_served_past_fd_setsize(tmp_path):
    """A daemon holding more than FD_SETSIZE (1,024) fds (uprobes, rings, files) still serves
    /metrics: select() cannot watch such a connection, epoll can."""
    d = Daemon(tmp_path, "--store", str(tmp_path / "store"),
               wrap=["/usr/bin/python3", "-c", FDS_THEN_EXEC])
    try:
        assert len(os.listdir(f"/proc/{d.proc.pid}/fd")) > 1100
        end = time.monotonic() + 10  # published at the first tick, a second after start
        while "pyrometer_build_info" not in (text := d.metrics()):
            assert time.monotonic() < end, text[:200]
            time.sleep(0.2)
    finally:
        rc, _ = d.stop()
    assert rc == 0
