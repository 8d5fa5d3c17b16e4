"""Untrusted input to the daemon's configuration: files that are not files, values that
would become HTTP headers or log lines of their own, addresses that cannot be served,
secrets that would be cut or printed. Each is refused within 5 s with a non-zero exit and
a one-line reason."""
import json
import os
import stat
import subprocess

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
    ("tenant-crlf", "control characters"),
    ("url-crlf", "control characters"),
    ("url-without-host", "no host"),
    ("metrics-port-99999", "port from 1 to 65535"),
    ("token-file-fifo", "not a regular file"),
    ("token-file-10mb", "too large"),
])
def test_run_refuses_hostile_settings(case, reason, fifo, tmp_path):
    big = tmp_path / "token"
    big.write_text("t" * (10 << 20))
    big.chmod(0o600)
    args = {
        "config-dev-zero": ["-c", "/dev/zero"],
        "config-fifo": ["-c", fifo],
        "config-directory": ["-c", str(tmp_path)],
        "tenant-crlf": ["--pyroscope", "http://127.0.0.1:1", "--tenant",
                        "t\r\nX-Injected: yes"],
        "url-crlf": ["--pyroscope", "http://127.0.0.1:1/\r\nX-Injected: yes"],
        "url-without-host": ["--pyroscope", "http://"],
        "metrics-port-99999": ["--metrics-addr", "127.0.0.1:99999"],
        "token-file-fifo": ["--pyroscope", "http://127.0.0.1:1", "--token-file", fifo],
        "token-file-10mb": ["--pyroscope", "http://127.0.0.1:1", "--token-file", str(big)],
    }[case]
    refused(check(*args), reason)


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
