"""GC metrics read by independent consumers: `promtool check metrics`, and a real Prometheus
(the Debian package) on loopback that scrapes pyrometer and answers histogram_quantile."""
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import ROOT, ZOO, GcTrace, free_port, workload_script

RULES = os.path.join(ROOT, "deploy", "prometheus-gc-rules.yml")


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


@pytest.fixture
def gc_metrics():
    port = free_port()
    proc = GcTrace("-a", "--metrics-addr", f"127.0.0.1:{port}").proc
    yield port, proc
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


def scrape_until(port, pred, timeout=20):
    end, text, errors = time.monotonic() + timeout, "", []
    while time.monotonic() < end:
        try:
            _, text = get(f"http://127.0.0.1:{port}/metrics")
        except OSError as e:
            text = ""
            errors.append(f"{time.monotonic() - end + timeout:.1f}s: {e!r}")
        if pred(text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"metrics on port {port} never showed what was expected; "
                         f"failed scrapes: {errors[-5:]}; last text:\n{text}")


def test_metrics_pass_promtool_and_label_services(gc_metrics, workload):
    port, _ = gc_metrics
    w = workload(ZOO["py311"], workload_script("gc_heavy.py"), ["1"])
    service = os.path.basename(w.script_in_root)[:-3]  # `python3.11 /tmp/x.py` -> x
    nousdt = workload(ZOO["py311-nousdt"])
    nousdt_service = os.path.basename(nousdt.script_in_root)[:-3]
    w.proc.stdin.write("go\n")
    w.proc.stdin.flush()
    report = json.loads(w.proc.stdout.readline())
    w.proc.wait()
    want = (f'python_gc_collections_total{{service_name="{service}",generation="0"}} '
            f'{report["stats"][0]["collections"]}')
    text = scrape_until(port, lambda t: want in t)
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # whole lines: "} 1" must not pass for "} 10"
    assert f'\npython_gc_tracing_available{{service_name="{service}"}} 1\n' in text
    assert (f'\npython_gc_tracing_available{{service_name="{nousdt_service}",'
            'reason="no_usdt"} 0\n' in text)
    assert f'service_name="{nousdt_service}",generation' not in text  # unavailable, not zero
    # buckets are cumulative and end with the count
    buckets = [int(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(f'python_gc_pause_seconds_bucket{{service_name="{service}",generation="0"')]
    assert buckets == sorted(buckets) and buckets[-1] == report["stats"][0]["collections"]


def gc_series_of(workload, *options):
    """Runs a GC workload traced with `pyrometer gc -p PID OPTIONS`; returns its
    python_gc_collections_total lines and the workload's pid. The workload outlives the
    scrape: `gc -p` ends, and its metrics server with it, once its process has exited."""
    port = free_port()
    w = workload(ZOO["py311"], workload_script("gc_heavy.py"), ["60"])
    # ready: the pid is tracked, and only now may the workload start
    trace = GcTrace("-p", str(w.pid), *options, "--metrics-addr", f"127.0.0.1:{port}")
    proc = trace.proc
    try:
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        try:
            text = scrape_until(port, lambda t: "python_gc_collections_total{" in t)
        except AssertionError as e:
            state = "had exited by itself" if proc.poll() is not None else "was running"
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            raise AssertionError(f"{e}\npyrometer gc {state}; it said:\n{trace.stderr()}"
                                 ) from None
        return [l for l in text.splitlines() if l.startswith("python_gc_collections_total{")], w.pid
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        w.stop()


def test_pid_label_only_when_asked(workload):
    series, pid = gc_series_of(workload, "--metrics-pid")
    assert series and all(f',pid="{pid}"}}' in l for l in series)
    series, _ = gc_series_of(workload)
    assert series and not any("pid=" in l for l in series)


def test_metrics_endpoint_answers_only_metrics(gc_metrics):
    port, _ = gc_metrics
    with pytest.raises(urllib.error.HTTPError) as e:
        get(f"http://127.0.0.1:{port}/")
    assert e.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


def test_alert_rules_pass_promtool():
    r = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # the whole line: "14 rules found" must not pass for 4
    assert "\n  SUCCESS: 4 rules found\n" in r.stdout, r.stdout


def test_prometheus_scrapes_and_answers_a_quantile(gc_metrics, workload, tmp_path):
    port, _ = gc_metrics
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: pyrometer
    static_configs:
      - targets: ["127.0.0.1:{port}"]
""")
    prom = subprocess.Popen(["prometheus", f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        w = workload(ZOO["py313"], workload_script("gc_heavy.py"), ["10"])
        service = os.path.basename(w.script_in_root)[:-3]
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        report = json.loads(w.proc.stdout.readline())  # its own timing of every collection
        # the median young pause over the whole run, as Prometheus computes it from the
        # buckets pyrometer served, against the workload's own median (in seconds): a unit
        # slip (ms for s) is a factor of 1000; the buckets' interpolation and the callbacks'
        # overhead are well within the factor of 3 allowed
        query = ("histogram_quantile(0.5, sum by (le) (increase(python_gc_pause_seconds_bucket"
                 f'{{service_name="{service}",generation="0"}}[1m])))')
        url = (f"http://127.0.0.1:{prom_port}/api/v1/query?"
               + urllib.parse.urlencode({"query": query}))
        value, end = None, time.monotonic() + 40
        while time.monotonic() < end:
            try:
                _, body = get(url)
                result = json.loads(body)["data"]["result"]
                if result and result[0]["value"][1] not in ("NaN", "0"):
                    value = float(result[0]["value"][1])
                    break
            except OSError:
                pass  # Prometheus still starting
            time.sleep(1)
        if value is None:
            _, served = get(f"http://127.0.0.1:{port}/metrics")
            raise AssertionError(f"Prometheus never answered {query}; pyrometer served:\n"
                                 + "\n".join(l for l in served.splitlines()
                                              if "collections_total" in l))
        theirs = report["callback_median_ns"]["0"] / 1e9
        assert theirs / 3 <= value <= theirs * 3, (value, theirs)
        _, body = get(f"http://127.0.0.1:{prom_port}/api/v1/targets")
        assert json.loads(body)["data"]["activeTargets"][0]["health"] == "up"
    finally:
        prom.terminate()
        prom.wait(timeout=30)


def test_probes_linger_then_detach_when_no_process_uses_the_binary(workload):
    """Only the bullseye chroot runs python3.9 here: its probes stay for the linger period
    after its process exits (3 s here), then go."""
    port = free_port()
    g = GcTrace("-a", "--linger", "3", "--metrics-addr", f"127.0.0.1:{port}").proc
    attached = lambda t: int(next(l for l in t.splitlines()
                                  if l.startswith("pyrometer_gc_binaries_attached ")).split()[1])
    before = attached(scrape_until(port, lambda t: "pyrometer_gc_binaries_attached" in t))
    w = workload(ZOO["py39"])
    scrape_until(port, lambda t: attached(t) == before + 1)
    w.proc.stdin.close()
    w.proc.wait()
    gone = time.monotonic()
    scrape_until(port, lambda t: attached(t) == before)
    assert time.monotonic() - gone >= 3, "detached before the linger (3 s) was over"
    g.send_signal(signal.SIGINT)
    g.wait(timeout=30)
