"""Splits its CPU between full collections of a large heap (collect_now, gc.collect()) and
integer arithmetic (compute), timing both with its own thread CPU clock. Args: SECONDS MODE
[hold]: MODE "gc" collects; "nogc" disables the collector and only computes. With "hold" it
waits for a line on stdin after "ready". When done it prints {"gc": s, "compute": s} and
waits for stdin to close, off the CPU, so the interpreter's shutdown collection falls after
the test's recording."""
import gc, json, sys, time

heap = [[i] for i in range(300_000)]  # containers: each full collection traverses them

def collect_now():
    gc.collect()

def compute(n):
    s = 0
    for i in range(n):
        s += i * i
    return s

def main():
    collecting = sys.argv[2] == "gc"
    if not collecting:
        gc.disable()
    spent = {"gc": 0.0, "compute": 0.0}
    print("ready", flush=True)
    if sys.argv[3:] == ["hold"]:
        sys.stdin.readline()
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        if collecting:
            t = time.thread_time()
            collect_now()
            spent["gc"] += time.thread_time() - t
        t = time.thread_time()
        compute(800_000)
        spent["compute"] += time.thread_time() - t
    print(json.dumps(spent), flush=True)
    sys.stdin.readline()

main()
