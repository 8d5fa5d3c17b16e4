"""Alerts from `pyrometer gc` reach a real Alertmanager (the Debian package) on loopback,
are re-sent while pauses keep exceeding the rule, and are resolved after they stop."""
import json
import os
import re
import socket
import subprocess
import urllib.request

import pytest

from conftest import PYROMETER, ZOO, GcTrace, free_port, wait_for, workload_script
from daemon import daemon_as_deployed, stop_leaving_no_trace


@pytest.fixture
def alertmanager(tmp_path):
    port = free_port()
    (tmp_path / "am.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    proc = subprocess.Popen(["prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}",
                             f"--storage.path={tmp_path / 'am'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(lambda: answers(url + "/-/ready"), 10, "answer from Alertmanager")
        except AssertionError as e:
            proc.kill()  # its stderr is whole only once it is gone
            raise AssertionError(f"{e}: {proc.communicate(timeout=30)[1]}") from None
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def active_alerts(url):
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=5) as r:
        return [a for a in json.load(r) if a["status"]["state"] == "active"]


def fire_and_resolve(alertmanager, w, service):
    """Starts gc_pauses.py's pauses (20 ms and more, full collections): both rules fire with
    the service, host and the pause's stack, are re-sent while firing, and are resolved once
    the pauses stop while the process lives on."""
    w.proc.stdin.write("go\n")
    w.proc.stdin.flush()
    mine = lambda: {a["labels"]["alertname"]: a for a in active_alerts(alertmanager)
                    if a["labels"]["service_name"] == service}
    firing = wait_for(lambda: len(mine()) == 2 and mine(), 20,
                      lambda: f"alerts firing: {active_alerts(alertmanager)}")
    pause = firing["PythonGCPause"]
    assert pause["labels"]["generation"] == "2"
    assert pause["labels"]["host"] == socket.gethostname()
    assert float(pause["annotations"]["pause_ms"]) >= 20
    assert w.script_in_root in pause["annotations"]["stack"]
    assert float(firing["PythonGCPauseP99"]["annotations"]["pause_ms"]) >= 20
    # the README's labels and annotations, each summary naming its figure
    host = socket.gethostname()
    for name, alert in firing.items():
        assert alert["labels"]["severity"] == "warning", alert
        what = "GC pause of" if name == "PythonGCPause" else "p99 GC pause"
        window = "" if name == "PythonGCPause" else " over 3 s"
        m = re.fullmatch(rf"{re.escape(service)} on {re.escape(host)}: {what} ([\d.]+) ms"
                         rf"{window} \(generation {alert['labels']['generation']}\)",
                         alert["annotations"]["summary"])
        assert m, alert
        assert abs(float(m.group(1)) - float(alert["annotations"]["pause_ms"])) <= 0.051, alert
    # re-sent while firing: Alertmanager records each update
    updated = pause["updatedAt"]
    wait_for(lambda: mine().get("PythonGCPause", {}).get("updatedAt", updated) != updated, 10,
             "re-sent PythonGCPause")

    assert w.proc.stdout.readline().strip() == "done"  # pauses stop; the process lives on
    wait_for(lambda: not mine(), 20, lambda: f"resolution of the alerts: {mine()}")
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
    d = daemon_as_deployed(tmp_path, "--alertmanager", alertmanager, "--alert-pause", "0.02",
                           "--alert-p99", "0.02", "--alert-window", "3", "--alert-resend", "1")
    try:
        w = workload(ZOO["py311"], workload_script("gc_pauses.py"), ["6"])
        service = os.path.basename(w.script_in_root)[:-3]
        # tracked (its GC series exist) before the pauses start
        wait_for(lambda: f'\npython_gc_tracing_available{{service_name="{service}"}} 1\n'
                 in d.metrics(), 20, lambda: f"GC tracing of {service}: {d.metrics()}")
        fire_and_resolve(alertmanager, w, service)
    finally:
        stop_leaving_no_trace(d)


def test_delivery_failures_are_logged_once_per_streak(workload):
    """An Alertmanager that fails for a while is named once per streak of failures, not at
    every retry, and its recovery once (README); alerts are retried at every tick."""
    from collector import Collector
    am = Collector()
    am.answer = lambda req: (503, {}, b"")
    w = workload(ZOO["py311"], workload_script("gc_pauses.py"), ["30"])
    trace = GcTrace("-v", "-p", str(w.pid), "--threshold", "1000", "--alertmanager", am.url,
                    "--alert-pause", "20", "--alert-window", "3", "--alert-resend", "1")
    try:
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        answered = lambda status: sum(r.status == status for r in am.requests)
        wait_for(lambda: answered(503) >= 3, 30, "three refused deliveries")
        am.answer = lambda req: (200, {}, b"")
        wait_for(lambda: answered(200) >= 1, 30, "a delivery after the recovery")
        refused = answered(503)
        am.answer = lambda req: (503, {}, b"")
        wait_for(lambda: answered(503) >= refused + 3, 30, "three more refused deliveries")
        trace.stop()
    finally:
        am.down()
    err = trace.stderr()
    assert err.count("cannot send alerts to Alertmanager: HTTP 503 (will retry)") == 2, err
    assert err.count("Alertmanager reachable again") == 1, err


def test_alert_options_need_an_alertmanager():
    r = subprocess.run([PYROMETER, "gc", "-a", "--alert-pause", "5"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert "--alertmanager" in r.stderr
