"""Process churn: makes TOTAL short-lived children, RATE a second (fewer on a machine that
cannot keep up; it gives up after MAX_SECONDS), each running one garbage collection, so the
GC maps see it, then exiting: forks, and every tenth a freshly exec'd interpreter. Prints "ready", waits for a line on stdin, and prints a JSON summary at the
end: how many children it made and every collection made by it and by them, as each counted
its own (forked children through a pipe, exec'd ones on their stdout). Its own collector is
off after that, so the summary stays the whole truth while it waits to be stopped.
Args: RATE TOTAL [MAX_SECONDS (600)]."""
import gc, json, os, subprocess, sys, time

# A short CLI tool's life (0.3 s): discovery names the new image, and so its service, before
# it exits; one gone sooner is counted under "unknown" (test_production covers that).
EXECED = ("import gc, os, time; gc.collect(); time.sleep(0.3); "
          "print(sum(s['collections'] for s in gc.get_stats()), flush=True); os._exit(0)")


def collections():
    return sum(s["collections"] for s in gc.get_stats())


rate, total = int(sys.argv[1]), int(sys.argv[2])
max_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 600.0
print("ready", flush=True)
sys.stdin.readline()  # the test says when the profiler has seen us
forked = execed = 0
theirs = 0  # collections made by the children
counts_r, counts_w = os.pipe()
os.set_blocking(counts_r, False)
pending = b""
start = time.monotonic()
children = []


def read_counts():
    """Forked children's counts, one line each (short writes to a pipe are atomic)."""
    global pending, theirs
    try:
        while chunk := os.read(counts_r, 65536):
            pending += chunk
    except BlockingIOError:
        pass
    *lines, pending = pending.split(b"\n")
    theirs += sum(map(int, lines))


def reap(block):
    global theirs, children
    left = []
    for c in children:
        if block:
            c.wait()
        if c.poll() is None:
            left.append(c)
        else:
            assert c.returncode == 0
            theirs += int(c.stdout.read())
            c.stdout.close()
    children = left


while forked + execed < total and time.monotonic() - start < max_seconds:
    due = start + (forked + execed) / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    if (forked + execed) % 10 == 9:
        children.append(subprocess.Popen([sys.executable, "-S", "-c", EXECED],
                                         stdout=subprocess.PIPE))
        execed += 1
    else:
        inherited = collections()
        if os.fork() == 0:
            gc.collect()
            os.write(counts_w, b"%d\n" % (collections() - inherited))
            os._exit(0)
        forked += 1
    try:  # reap without waiting: the next fork is due in 5 ms
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    reap(block=False)
    read_counts()
reap(block=True)
try:
    while os.waitpid(-1, 0):
        pass
except ChildProcessError:
    pass
os.close(counts_w)
os.set_blocking(counts_r, True)
read_counts()
gc.disable()
print(json.dumps({"forked": forked, "execed": execed, "collections": collections() + theirs,
                  "seconds": time.monotonic() - start}), flush=True)
