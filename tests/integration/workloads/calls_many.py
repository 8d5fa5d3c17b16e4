"""More functions than a thread has slots for per-function totals (bpf/calls.bpf.c keeps
128, direct-mapped), called in turn so that they keep taking each other's slots, and
threads that exit while tracing goes on. Prints "ready", waits for a line on stdin, makes the calls,
prints "done"; then waits for stdin to close, or exits at once with the argument "exit".
  f0 .. f{N_FUNCS-1}   ROUNDS calls each, from sweep()
  tick                 N_THREADS x THREAD_CALLS calls, from worker() in short-lived threads"""
import sys
import threading

N_FUNCS, ROUNDS, N_THREADS, THREAD_CALLS = 200, 5, 4, 300

FUNCS = []
for i in range(N_FUNCS):
    exec(f"def f{i}():\n    return {i}")
    FUNCS.append(globals()[f"f{i}"])


def sweep():
    for _ in range(ROUNDS):
        for f in FUNCS:
            f()


def tick():
    pass


def worker():
    for _ in range(THREAD_CALLS):
        tick()


def main():
    sweep()
    threads = [threading.Thread(target=worker) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


print("ready", flush=True)
sys.stdin.readline()
main()
print("done", flush=True)
if sys.argv[1:] != ["exit"]:
    sys.stdin.readline()
