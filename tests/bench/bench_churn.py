#!/usr/bin/env python3
"""make bench (churn): the daemon's footprint while 200 short-lived Python processes per second
start and exit for 60 s beside 2 long-lived ones. Prints the agent's RSS over time (it should
stay flat: exited processes are forgotten 3 s after they exit), its CPU use, and what it
tracked and lost."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request

PYRO = os.environ.get("PYROMETER", "build/pyrometer")
PY = "/usr/bin/python3.11"
RATE, SECONDS = 200, 60
HERE = os.path.dirname(os.path.abspath(__file__))
CHURN = os.path.join(HERE, "..", "integration", "workloads", "churn.py")
LONG = ("import gc, time\n"
        "while True:\n"
        "    end = time.monotonic() + 0.01\n"
        "    while time.monotonic() < end: pass\n"
        "    gc.collect(0); time.sleep(0.04)\n")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def metric(addr, name):
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (BPF)")
    tmp = tempfile.mkdtemp(prefix="pyrometer-churn-")
    addr = "127.0.0.1:19464"
    longs = [subprocess.Popen([PY, "-c", LONG]) for _ in range(2)]
    agent = subprocess.Popen([PYRO, "run", "--interval", "5", "--store", tmp + "/store",
                              "--metrics-addr", addr], stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)
        base_rss, base_cpu = rss_kib(agent.pid), metric(addr, "pyrometer_cpu_seconds_total")
        print(f"== Churn: {RATE} Python processes/s for {SECONDS} s beside 2 long-lived ones")
        print(f"   agent RSS before: {base_rss / 1024:.1f} MiB")
        churn = subprocess.Popen([PY, CHURN, str(RATE), str(RATE * SECONDS), str(SECONDS)],
                                 stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        churn.stdout.readline()
        time.sleep(1)  # tracked before it forks: its children inherit that
        churn.stdin.write("go\n")
        churn.stdin.flush()
        series = []
        for _ in range(SECONDS // 10):
            time.sleep(10)
            series.append(rss_kib(agent.pid))
        summary = json.loads(churn.stdout.readline())
        churn.wait()
        during_cpu = metric(addr, "pyrometer_cpu_seconds_total") - base_cpu
        time.sleep(5)
        after = rss_kib(agent.pid)
        print("   agent RSS every 10 s: " + " ".join(f"{r / 1024:.1f}" for r in series) + " MiB")
        print(f"   agent RSS 5 s after:  {after / 1024:.1f} MiB "
              f"({100 * (after - base_rss) / base_rss:+.1f} % against before)")
        n = summary["forked"] + summary["execed"]
        print(f"   processes: {n} ({n / summary['seconds']:.0f}/s; {summary['execed']} exec'd)")
        print(f"   agent CPU during churn: {during_cpu:.2f} s "
              f"({100 * during_cpu / summary['seconds']:.1f} % of a core)")
        print(f"   tracked now: {metric(addr, 'pyrometer_processes_tracked'):.0f}; "
              f"samples lost: {metric(addr, 'pyrometer_samples_lost_total'):.0f}; "
              f"map full: {metric(addr, 'pyrometer_map_full_total'):.0f}")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        for p in longs:
            p.kill()
            p.wait()
        subprocess.run(["rm", "-rf", tmp])


main()
