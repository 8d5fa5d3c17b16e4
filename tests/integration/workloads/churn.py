"""Process churn: forks RATE short-lived children per second for SECONDS (each runs one
garbage collection, so the GC maps see it, then exits), and execs a fresh interpreter every
tenth of them. Prints "ready", waits for a line on stdin, and prints a JSON summary at the
end. Args: RATE SECONDS."""
import gc, json, os, subprocess, sys, time

rate, seconds = int(sys.argv[1]), float(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # the test says when the profiler has seen us
forked = execed = 0
start = time.monotonic()
children = []
while time.monotonic() - start < seconds:
    due = start + (forked + execed) / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    if (forked + execed) % 10 == 9:
        children.append(subprocess.Popen([sys.executable, "-S", "-c", "import gc; gc.collect()"]))
        execed += 1
    else:
        if os.fork() == 0:
            gc.collect()
            os._exit(0)
        forked += 1
    try:  # reap without waiting: the next fork is due in 5 ms
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    children = [c for c in children if c.poll() is None]
for c in children:
    c.wait()
try:
    while os.waitpid(-1, 0):
        pass
except ChildProcessError:
    pass
print(json.dumps({"forked": forked, "execed": execed,
                  "seconds": time.monotonic() - start}), flush=True)
