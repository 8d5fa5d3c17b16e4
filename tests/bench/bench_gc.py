#!/usr/bin/env python3
"""make bench (GC tracing): measured side by side in one run.

- GC events per second handled with none lost: two GC-heavy processes, every collection sent
  to user space with its stack (--threshold 0);
- BPF cost per GC event (kernel.bpf_stats_enabled), both probe programs per collection, for
  the default threshold (counting only) and for threshold 0 (with a stack walk);
- the target's slowdown with GC tracing on: interleaved runs with and without the agent.
"""
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time

PYRO = os.environ.get("PYROMETER", "build/pyrometer")
PY = "/usr/bin/python3.11"
PAIRS = int(os.environ.get("BENCH_PAIRS", "15"))

GC_HEAVY = """
import sys, time
class Node:
    def __init__(self, other=None):
        self.other = other or self
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for _ in range(2000):
        Node()
    keep = [Node(Node()) for _ in range(3000)]
"""
FIXED = GC_HEAVY.replace("end = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:",
                         "for _ in range(int(sys.argv[1])):")


def num(pattern, text):
    m = re.search(pattern, text)
    return int(m.group(1)) if m else 0


class Agent:
    """pyrometer gc -a, its output going to a file: a pipe nobody reads would fill, block
    the agent and make it lose events."""

    def __init__(self, *args):
        self.out = tempfile.NamedTemporaryFile("w+", suffix=".json")
        self.err = tempfile.NamedTemporaryFile("w+", suffix=".log")
        self.proc = subprocess.Popen([PYRO, "gc", "-a", "-v", "--json", *args],
                                     stdout=self.out, stderr=self.err, text=True)
        self.wait_for('"ready"')
        self.warm = subprocess.Popen([PY, "-c", "import time; time.sleep(600)"])
        self.wait_for(f'"pid":{self.warm.pid}')  # its binary is attached now

    def wait_for(self, text, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with open(self.out.name) as f:
                if text in f.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise SystemExit(f"pyrometer gc did not print {text}: " + open(self.err.name).read())

    def stop(self):
        self.warm.kill()
        self.warm.wait()
        self.proc.send_signal(signal.SIGINT)
        if self.proc.wait(timeout=120):
            raise SystemExit("pyrometer gc failed: " + open(self.err.name).read())
        return open(self.out.name).read(), open(self.err.name).read()


def throughput():
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    try:
        rows = []
        for threshold in ("10", "0"):
            a = Agent("--threshold", threshold)
            t = time.monotonic()
            loads = [subprocess.Popen([PY, "-c", GC_HEAVY, "3"]) for _ in range(2)]
            for p in loads:
                p.wait()
            secs = time.monotonic() - t
            out, err = a.stop()
            events = out.count('"event":"pause"')
            counted = sum(int(n) for n in re.findall(r'"event":"summary".*?"count":(\d+)', out))
            lost = num(r"lost: (\d+) pause events", err) + num(r"(\d+) pauses \(maps full\)", err)
            rows.append((threshold, counted / secs, events / secs, lost,
                         num(r"bpf: \d+ runs, (\d+) ns", err) / max(1, counted)))
        return rows
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("0")


def run(n):
    """Wall and CPU (user + system) time of one run of the GC-heavy target on CPU 1."""
    t = time.perf_counter()
    p = subprocess.Popen(["taskset", "-c", "1", PY, "-c", FIXED, str(n)])
    _, status, ru = os.wait4(p.pid, 0)
    if status:
        raise SystemExit(f"workload failed: {status}")
    return time.perf_counter() - t, ru.ru_utime + ru.ru_stime


def slowdown():
    """Pairs alternate which run comes first, so drift on the host does not favour one side."""
    wall, cpu = [], []
    run(300)
    for i in range(PAIRS):
        if i % 2:
            a = Agent()
            on = run(300)
            a.stop()
            off = run(300)
        else:
            off = run(300)
            a = Agent()
            on = run(300)
            a.stop()
        wall.append(on[0] / off[0])
        cpu.append(on[1] / off[1])
    return statistics.median(wall), statistics.median(cpu), statistics.quantiles(cpu, n=4)


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (BPF)")
    print("== GC tracing: events handled (two GC-heavy CPython 3.11 processes, 3 s)")
    print(f"   {'threshold':>9} {'collections/s':>14} {'events/s':>9} {'lost':>5} {'BPF ns/collection':>18}")
    for threshold, cps, eps, lost, ns in throughput():
        print(f"   {threshold + ' ms':>9} {cps:14.0f} {eps:9.0f} {lost:5d} {ns:18.0f}")
    print("   (BPF time covers gc__start and gc__done; at 0 ms each collection also walks the")
    print("   Python stack and sends an event)")
    wall, cpu, q = slowdown()
    print()
    print(f"== GC tracing: target slowdown, default threshold ({PAIRS} interleaved pairs, "
          "GC-heavy 3.11 workload)")
    print(f"   median wall {100 * (wall - 1):+.2f}%, cpu {100 * (cpu - 1):+.2f}% "
          f"(cpu IQR {100 * (q[0] - 1):+.2f}..{100 * (q[2] - 1):+.2f}%)   (goal: not measurable)")


main()
