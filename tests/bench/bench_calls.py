#!/usr/bin/env python3
"""make bench (calls): what tracing a function call costs the traced process, next to two
floors measured in the same run, both the same probes attached per process the same way:
  floor: a BPF program that only counts hits (the issue's goal is <= 1.1x this);
  timer: the least a per-thread latency measurement does (task storage shadow stack, the
         function from the registers, a clock read per probe; no counts, paths or histogram).
Cost per call = (run time traced - run time untraced) / calls, of a recursive fib (every
call one entry and one return).

This VM's speed drifts by 20-30 % over seconds, also within one process, which swamps a
10 % difference between runs seconds apart. So each round starts four processes at once
(untraced, floor, timer, full), attaches the tracers, then has them run fib in turn, again
and again: a ratio is taken between runs a fraction of a second apart. Fresh processes each
round spread whatever one process's layout does to its cost."""
import os
import signal
import statistics
import subprocess
import sys

PYRO = os.environ.get("PYROMETER", "build/pyrometer")
ZOO = os.environ.get("PYROMETER_ZOO", "/var/cache/pyrometer-zoo")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
TURNS = 8  # fib runs per process per round
N = 22  # fib(22): 57,313 calls
CALLS = 2 * 28657 - 1
MODES = (None, "count", "timer", "full")

WORKLOAD = f"""
import sys, time
def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)
print("ready", flush=True)
for line in sys.stdin:
    t = time.perf_counter(); fib({N}); print(time.perf_counter() - t, flush=True)
"""

INTERPRETERS = [("3.15", "sid", "/usr/bin/python3.15"), ("3.9", "bullseye", "/usr/bin/python3.9")]


def start_tracer(pid, mode):
    """pyrometer record --mode calls on pid: the full program, or a floor."""
    t = subprocess.Popen([PYRO, "record", "--mode", "calls", "-p", str(pid), "-d", "600", "--max-duration", "600", "-v",
                          "-o", "/dev/null", "--format", "folded",
                          *([f"--floor={mode}"] if mode != "full" else [])],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in t.stderr:
        if "tracing function calls" in line:
            return t
    raise SystemExit(f"bench: pyrometer record ({mode}) did not start: exit {t.wait()}: {line}")


def run_fib(p):
    p.stdin.write("go\n")
    p.stdin.flush()
    return float(p.stdout.readline())


def one_round(root, exe, times):
    """Four processes, three of them traced; TURNS fib runs each, in turn."""
    with open(os.path.join(root, "tmp", "bench_calls.py"), "w") as f:
        f.write(WORKLOAD)
    procs = {m: subprocess.Popen(["chroot", root, exe, "/tmp/bench_calls.py"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for m in MODES}
    for p in procs.values():
        p.stdout.readline()
    tracers = [start_tracer(procs[m].pid, m) for m in MODES if m]
    run_fib(procs[None])  # warm: the first run of a process pays for its first calls
    for m in MODES[1:]:
        run_fib(procs[m])
    for _ in range(TURNS):
        for m in MODES:
            times[m].append(run_fib(procs[m]))
    for t in tracers:
        t.send_signal(signal.SIGINT)
        t.communicate(timeout=60)
    for p in procs.values():
        p.stdin.close()
        p.wait()


def main():
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (BPF)")
    print(f"== Function-call tracing: cost per traced call (fib({N}), {CALLS} calls; "
          f"{ROUNDS} rounds x {TURNS} turns of four processes run in turn; medians)")
    print(f"   {'python':8} {'untraced':>9} {'floor':>9} {'timer':>9} {'full':>9} "
          f"{'floor/call':>10} {'timer/call':>10} {'full/call':>9} {'timer/floor':>11} "
          f"{'full/floor':>10}")
    for label, rootname, exe in INTERPRETERS:
        root = os.path.join(ZOO, rootname)
        if not os.path.exists(root + exe):
            print(f"   {label:8} (not in the zoo: make zoo)")
            continue
        times = {m: [] for m in MODES}
        for _ in range(ROUNDS):
            one_round(root, exe, times)
        base, floor, timer, full = (statistics.median(times[m]) for m in MODES)
        per = [(t - base) / CALLS * 1e6 for t in (floor, timer, full)]
        turns = range(len(times[None]))
        ratios = {m: sorted((times[m][i] - times[None][i]) / (times["count"][i] - times[None][i])
                            for i in turns) for m in ("timer", "full")}
        q = {m: statistics.quantiles(r, n=4) for m, r in ratios.items()}
        print(f"   {label:8} {base * 1e3:7.1f}ms {floor * 1e3:7.1f}ms {timer * 1e3:7.1f}ms "
              f"{full * 1e3:7.1f}ms {per[0]:8.2f}us {per[1]:8.2f}us {per[2]:7.2f}us "
              f"{q['timer'][1]:10.2f}x {q['full'][1]:9.2f}x")
        print(f"   {'':8} the turns' ratios, middle half: timer/floor {q['timer'][0]:.2f}-"
              f"{q['timer'][2]:.2f}, full/floor {q['full'][0]:.2f}-{q['full'][2]:.2f}")
    print("   (goal: full <= 1.1x the floor; floor = the two uprobe traps per call and a count;")
    print("    timer = floor + what timing a call per thread needs at the least)")
    sys.stdout.flush()


main()
