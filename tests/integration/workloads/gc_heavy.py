"""Makes cyclic garbage for SECONDS, timing every collection itself through gc.callbacks.
Prints "ready", waits for a line on stdin, runs, then prints
{"stats": gc.get_stats(), "at_ns": CLOCK_MONOTONIC of that reading, "from_ns": CLOCK_MONOTONIC
when the callback was registered, "callback_ns": {generation: total ns}, "callback_max_ns":
{...}, "callback_median_ns": {...}, "callback_each_ns": {generation: [ns, in order]}}.
GC is disabled around both readings, so the callback saw exactly the collections that
started between from_ns and at_ns; collections after at_ns are the interpreter's shutdown
collections."""
import gc, json, sys, time

started = {}
total_ns, max_ns, each_ns = {}, {}, {}

def timer(phase, info):
    gen = info["generation"]
    if phase == "start":
        started[gen] = time.perf_counter_ns()
    elif gen in started:
        d = time.perf_counter_ns() - started.pop(gen)
        total_ns[gen] = total_ns.get(gen, 0) + d
        max_ns[gen] = max(max_ns.get(gen, 0), d)
        each_ns.setdefault(gen, []).append(d)

class Node:
    def __init__(self, other=None):
        self.other = other or self

print("ready", flush=True)
sys.stdin.readline()
gc.disable()
from_ns = time.monotonic_ns()
gc.callbacks.append(timer)
gc.enable()
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for _ in range(2000):
        Node()
    keep = [Node(Node()) for _ in range(3000)]
gc.callbacks.remove(timer)
gc.disable()
at_ns = time.monotonic_ns()
stats = gc.get_stats()
median_ns = {g: sorted(v)[len(v) // 2] for g, v in each_ns.items()}
print(json.dumps({"stats": stats, "at_ns": at_ns, "from_ns": from_ns, "callback_ns": total_ns,
                  "callback_max_ns": max_ns, "callback_median_ns": median_ns,
                  "callback_each_ns": each_ns}), flush=True)
