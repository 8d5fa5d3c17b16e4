#!/usr/bin/env python3
"""make bench (imports): what the import probes cost the processes that import, measured side
by side in one run. The probes are armed once per interpreter binary, so every process of
that binary pays them on every import that loads a module (an import of a module already in
sys.modules does not reach them):

- BPF ns per probe run (kernel.bpf_stats_enabled), start and done together;
- a typical import: N small modules, compiled beforehand, loaded with __import__ by a fresh
  process; time per import with the agent (record --mode imports -a) and without,
  interleaved pairs, median ratio;
- a start-up like a service's: ten stdlib packages and all they load (about 200 modules),
  time per module loaded;
- the worst case: an import that fails at once (a module that does not exist), in a loop:
  the least work an import can do that still fires both probes.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_cpu  # noqa: E402

PY = "/usr/bin/python3.11"
PAIRS = int(os.environ.get("BENCH_PAIRS", "7"))
MODULES, MISSING = 400, 20000

LOAD = """
import sys, time
sys.path.insert(0, sys.argv[1])
names = [f"m{i}" for i in range(int(sys.argv[2]))]
t = time.perf_counter()
for n in names:
    __import__(n)
print(f"{(time.perf_counter() - t) / len(names) * 1e9:.1f}")
"""

# A start-up much like a service's: a few stdlib packages, and all they load in turn.
STDLIB = """
import sys, time
before = len(sys.modules)
t = time.perf_counter()
import asyncio, argparse, decimal, email.mime.text, http.client, json, logging.handlers
import sqlite3, unittest, xml.etree.ElementTree
print(f"{(time.perf_counter() - t) / (len(sys.modules) - before) * 1e9:.1f}")
"""

MISS = """
import sys, time
n = int(sys.argv[1])
t = time.perf_counter()
for i in range(n):
    try:
        __import__("pyrometer_bench_no_such_module")
    except ImportError:
        pass
print(f"{(time.perf_counter() - t) / n * 1e9:.1f}")
"""


def make_modules():
    where = tempfile.mkdtemp(prefix="pyro-bench-imports-")
    for i in range(MODULES):
        with open(os.path.join(where, f"m{i}.py"), "w") as f:
            f.write(f"X = {i}\ndef f():\n    return X\n")
    subprocess.run([PY, "-m", "compileall", "-q", where], check=True)
    return where


def load(where):
    return float(subprocess.run([PY, "-c", LOAD, where, str(MODULES)], capture_output=True,
                                text=True, check=True).stdout)


def stdlib():
    return float(subprocess.run([PY, "-c", STDLIB], capture_output=True, text=True,
                                check=True).stdout)


def miss():
    return float(subprocess.run([PY, "-c", MISS, str(MISSING)], capture_output=True,
                                text=True, check=True).stdout)


class Agent(bench_cpu.Agent):
    """record --mode imports -a: the host's interpreters are armed at its start. With
    floor, the same probes run a program that only counts hits: what the two traps cost."""

    def __init__(self, floor=False):
        self.proc = subprocess.Popen(["taskset", "-c", bench_cpu.AGENT_CPU, bench_cpu.PYRO,
                                      "record", "--mode", "imports", "-a", "-v", "-o",
                                      "/dev/null", "--format", "folded",
                                      *(["--floor"] if floor else [])],
                                     stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "recording imports" in line:
                return
        raise SystemExit("pyrometer record did not start: " + self.proc.stderr.read())


def rounds(fn):
    """Medians of ns per import: without the agent, with the floor, with the agent; and the
    median of the per-round ratios agent / without. Each round runs the three in turn."""
    fn()  # warm up (page cache, pyc)
    off, floor, on, ratios = [], [], [], []
    for _ in range(PAIRS):
        off.append(fn())
        a = Agent(floor=True)
        floor.append(fn())
        a.stop()
        a = Agent()
        on.append(fn())
        a.stop()
        ratios.append(on[-1] / off[-1])
    return statistics.median(off), statistics.median(floor), statistics.median(on), \
        statistics.median(ratios)


def probe_cost():
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    try:
        a = Agent()
        miss()
        err = a.stop()
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("0")
    m = re.search(r"bpf: (\d+) runs, (\d+) ns in all", err)
    if not m:
        raise SystemExit("no BPF run time in the summary:\n" + err)
    runs, ns = map(int, m.groups())
    return ns / runs, runs


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (BPF)")
    per_run, runs = probe_cost()
    where = make_modules()
    try:
        typical = rounds(lambda: load(where))
    finally:
        shutil.rmtree(where)
    worst = rounds(miss)
    startup = rounds(stdlib)
    print("== Import probes (import__find__load__start/done; record --mode imports -a)")
    print(f"   BPF per probe run: {per_run:.0f} ns ({runs} runs; two per import)")
    print(f"   {'per import':46} {'without':>8} {'floor':>8} {'agent':>8} {'agent-without':>14}"
          f" {'agent-floor':>12} {'agent/without':>13}")
    for label, (off, floor, on, ratio) in (
            (f"a small module, compiled ({MODULES} per process)", typical),
            ("stdlib start-up (asyncio, email, sqlite3, ...)", startup),
            ("an import that fails at once (the worst case)", worst)):
        print(f"   {label:46} {off / 1e3:6.1f}us {floor / 1e3:6.1f}us {on / 1e3:6.1f}us "
              f"{(on - off) / 1e3:+12.1f}us {(on - floor) / 1e3:+10.1f}us "
              f"{100 * (ratio - 1):+12.1f}%")
    print(f"   (medians of {PAIRS} rounds; floor = the same probes with a program that only "
          f"counts: the two uprobe traps)")
    print()


if __name__ == "__main__":
    main()
