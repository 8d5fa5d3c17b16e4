#!/usr/bin/env python3
"""make bench (calls): what tracing a function call costs the traced process, next to a bare
floor measured in the same run: the same probes attached per process to a BPF program that
only counts hits. Cost per call = (run time traced - run time untraced) / calls, from
interleaved runs of a recursive fib (every call one entry and one return)."""
import os
import statistics
import subprocess
import sys
import time

PYRO = os.environ.get("PYROMETER", "build/pyrometer")
ZOO = os.environ.get("PYROMETER_ZOO", "/var/cache/pyrometer-zoo")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
N = 22  # fib(22): 57,313 calls
CALLS = 2 * 28657 - 1

WORKLOAD = f"""
import sys, time
def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)
print("ready", flush=True)
sys.stdin.readline()
t = time.perf_counter(); fib({N}); print(time.perf_counter() - t, flush=True)
"""

INTERPRETERS = [("3.15", "sid", "/usr/bin/python3.15"), ("3.9", "bullseye", "/usr/bin/python3.9")]


def one(root, exe, mode):
    """fib's run time in a fresh process, traced per `mode` (None, "floor" or "full")."""
    with open(os.path.join(root, "tmp", "bench_calls.py"), "w") as f:
        f.write(WORKLOAD)
    p = subprocess.Popen(["chroot", root, exe, "/tmp/bench_calls.py"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    tracer = None
    if mode:
        tracer = subprocess.Popen([PYRO, "record", "--mode", "calls", "-p", str(p.pid), "-d",
                                   "60", "-v", "-o", "/dev/null", "--format", "folded",
                                   *(["--floor"] if mode == "floor" else [])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in tracer.stderr:
            if "tracing function calls" in line:
                break
    p.stdin.write("go\n")
    p.stdin.flush()
    secs = float(p.stdout.readline())
    p.stdin.close()
    p.wait()
    if tracer:
        tracer.communicate(timeout=60)
    return secs


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (BPF)")
    print(f"== Function-call tracing: cost per traced call (fib({N}), {CALLS} calls, "
          f"{ROUNDS} interleaved rounds; medians)")
    print(f"   {'python':8} {'untraced':>10} {'floor':>10} {'full':>10} {'floor/call':>11} "
          f"{'full/call':>10} {'full/floor':>10}")
    for label, rootname, exe in INTERPRETERS:
        root = os.path.join(ZOO, rootname)
        if not os.path.exists(root + exe):
            print(f"   {label:8} (not in the zoo: make zoo)")
            continue
        times = {None: [], "floor": [], "full": []}
        for _ in range(ROUNDS):
            for mode in times:
                times[mode].append(one(root, exe, mode))
        base, floor, full = (statistics.median(times[m]) for m in (None, "floor", "full"))
        per_floor, per_full = (floor - base) / CALLS * 1e6, (full - base) / CALLS * 1e6
        print(f"   {label:8} {base * 1e3:8.1f}ms {floor * 1e3:8.1f}ms {full * 1e3:8.1f}ms "
              f"{per_floor:9.2f}us {per_full:8.2f}us {per_full / per_floor:9.2f}x")
    print("   (goal: full <= 1.1x the floor; the floor is the two uprobe traps per call)")


main()
