#!/usr/bin/env python3
"""make bench (wall mode): what the off-CPU program (tp_btf/sched_switch, `record --mode
wall` and the daemon's off-cpu default) costs, measured side by side in one run.

- BPF ns per context switch of tasks that are not Python (two C processes ping-ponging a
  byte through pipes): the cost every other task on the host pays;
- BPF ns per switch of a Python thread (the stack walk at switch-out, the accounting at
  switch-in), from two Python processes ping-ponging the same way, with the not-Python
  cost of the other runs taken out;
- the slowdown of both ping-pongs with the agent on, interleaved with runs without it
  (median of the per-pair ratios): the worst case, a target that does nothing but switch.
"""
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_cpu  # noqa: E402

PINGPONG = os.environ.get("PINGPONG", "build/bench_pingpong")
PY = "/usr/bin/python3.11"
PAIRS = int(os.environ.get("BENCH_PAIRS", "7"))
ROUNDS_C, ROUNDS_PY = 200_000, 50_000

PY_PINGPONG = """
import os, sys, time
n = int(sys.argv[1])
r1, w1 = os.pipe(); r2, w2 = os.pipe()
if os.fork() == 0:
    for _ in range(n):
        os.write(w2, os.read(r1, 1))
    os._exit(0)
def round_trip():
    os.write(w1, b"x")
    os.read(r2, 1)
t = time.perf_counter()
for _ in range(n):
    round_trip()
print(f"{time.perf_counter() - t:.6f}")
os.wait()
"""


def c_pingpong():
    return float(subprocess.run([PINGPONG, str(ROUNDS_C)], capture_output=True, text=True,
                                check=True).stdout)


def py_pingpong():
    return float(subprocess.run([PY, "-c", PY_PINGPONG, str(ROUNDS_PY)], capture_output=True,
                                text=True, check=True).stdout)


def Agent():
    """record --mode wall -a, as bench_cpu.py's Agent runs record."""
    return bench_cpu.Agent("--mode", "wall", "-F", "99")


def switch_costs():
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    try:
        a = Agent()
        c_pingpong()
        other = a.stop()
        a = Agent()
        py_pingpong()
        py = a.stop()
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("0")
    pattern = r"bpf switch: (\d+) runs, (\d+) ns in all, (\d+) switch-outs"
    runs_o, ns_o, _ = map(int, re.search(pattern, other).groups())
    runs_p, ns_p, walked = map(int, re.search(pattern, py).groups())
    filter_ns = ns_o / runs_o
    # a Python switch-out is one run, its switch-in part of another: charge the Python
    # side everything above what the same number of plain runs would cost
    per_python = (ns_p - runs_p * filter_ns) / max(1, walked) + filter_ns
    return filter_ns, per_python, runs_o, runs_p, walked


def slowdown(fn):
    ratios = []
    fn()  # warm up
    for _ in range(PAIRS):
        off = fn()
        a = Agent()
        on = fn()
        a.stop()
        ratios.append(on / off)
    return statistics.median(ratios), min(ratios), max(ratios)


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (BPF)")
    filter_ns, per_python, runs_o, runs_p, walked = switch_costs()
    print("== Off-CPU program (tp_btf/sched_switch; record --mode wall -a; kernel.bpf_stats_enabled)")
    print(f"   context switch of a task that is not Python: {filter_ns:.0f} ns "
          f"({runs_o} switches, C ping-pong of {ROUNDS_C} round trips)")
    print(f"   switch of a Python thread (walk + accounting): {per_python:.0f} ns "
          f"({walked} switch-outs walked of {runs_p} switches, Python ping-pong of "
          f"{ROUNDS_PY} round trips)")
    for label, fn in (("C ping-pong (not Python)", c_pingpong),
                      ("Python ping-pong", py_pingpong)):
        med, lo, hi = slowdown(fn)
        print(f"   slowdown with the agent, {label}: {100 * (med - 1):+.2f}% "
              f"(median of {PAIRS} pairs; {100 * (lo - 1):+.2f}..{100 * (hi - 1):+.2f}%)")
    print()


if __name__ == "__main__":
    main()
