"""Alerts from `pyrometer gc` reach a real Alertmanager (the Debian package) on loopback,
are re-sent while pauses keep exceeding the rule, and are resolved after they stop."""
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import PYROMETER, ZOO, GcTrace, workload_script


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def alertmanager(tmp_path):
    port = free_port()
    (tmp_path / "am.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    proc = subprocess.Popen(["prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}",
                             f"--storage.path={tmp_path / 'am'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/-/ready", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise AssertionError("Alertmanager did not start: " + proc.stderr.read())
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def active_alerts(url):
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=5) as r:
        return [a for a in json.load(r) if a["status"]["state"] == "active"]


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.3)
    return None


def fire_and_resolve(alertmanager, w, service):
    """Starts gc_pauses.py's pauses (20 ms and more, full collections): both rules fire with
    the service, host and the pause's stack, are re-sent while firing, and are resolved once
    the pauses stop while the process lives on."""
    w.proc.stdin.write("go\n")
    w.proc.stdin.flush()
    mine = lambda: {a["labels"]["alertname"]: a for a in active_alerts(alertmanager)
                    if a["labels"]["service_name"] == service}
    firing = wait_for(lambda: len(mine()) == 2 and mine(), 20)
    assert firing, f"alerts never fired: {active_alerts(alertmanager)}"
    pause = firing["PythonGCPause"]
    assert pause["labels"]["generation"] == "2"
    assert pause["labels"]["host"] == socket.gethostname()
    assert float(pause["annotations"]["pause_ms"]) >= 20
    assert w.script_in_root in pause["annotations"]["stack"]
    assert float(firing["PythonGCPauseP99"]["annotations"]["pause_ms"]) >= 20
    # re-sent while firing: Alertmanager records each update
    updated = pause["updatedAt"]
    assert wait_for(lambda: mine().get("PythonGCPause", {}).get("updatedAt", updated) != updated, 10)

    assert w.proc.stdout.readline().strip() == "done"  # pauses stop; the process lives on
    assert wait_for(lambda: not mine(), 20), f"alerts not resolved: {mine()}"
    assert w.proc.poll() is None


def test_gc_pause_alerts_fire_repeat_and_resolve(alertmanager, workload):
    w = workload(ZOO["py311"], workload_script("gc_pauses.py"), ["6"])
    service = os.path.basename(w.script_in_root)[:-3]
    # ready: the pid is tracked, and only now may the pauses start
    gc = GcTrace("-p", str(w.pid), "--threshold", "1000", "--alertmanager", alertmanager,
                 "--alert-pause", "20", "--alert-p99", "20", "--alert-window", "3",
                 "--alert-resend", "1").proc
    try:
        fire_and_resolve(alertmanager, w, service)
    finally:
        gc.terminate()
        gc.wait(timeout=30)


def test_the_daemon_alerts_on_gc_pauses(alertmanager, workload, tmp_path):
    """The daemon's own alert path (not pyrometer gc's), as deployed: started first, with
    the unit's capabilities."""
    from test_production import daemon_as_deployed, stop_leaving_no_trace
    d = daemon_as_deployed(tmp_path, "--alertmanager", alertmanager, "--alert-pause", "0.02",
                           "--alert-p99", "0.02", "--alert-window", "3", "--alert-resend", "1")
    try:
        w = workload(ZOO["py311"], workload_script("gc_pauses.py"), ["6"])
        service = os.path.basename(w.script_in_root)[:-3]
        # tracked (its GC series exist) before the pauses start
        assert wait_for(lambda: f'\npython_gc_tracing_available{{service_name="{service}"}} 1\n'
                        in d.metrics(), 20), d.metrics()
        fire_and_resolve(alertmanager, w, service)
    finally:
        stop_leaving_no_trace(d)


def test_alert_options_need_an_alertmanager():
    r = subprocess.run([PYROMETER, "gc", "-a", "--alert-pause", "5"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert "--alertmanager" in r.stderr
