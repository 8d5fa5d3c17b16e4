"""Threads whose time off the CPU is known. Args: SECONDS SCENARIO [hold]; with "hold" it
waits for a line on stdin after "ready". Prints what it measured of itself, as JSON, then
waits for stdin to close (off the CPU, so nothing after the recording counts).
- sleep: the main thread alternates 20 ms of computing (compute_slice) with 20 ms of
  time.sleep (sleep_slice); prints the wall seconds spent in each.
- gil: two threads (named contender-1, contender-2) run pure-Python loops in contend(); each
  waits for the GIL while the other holds it. Prints the thread ids, and (where /proc is
  mounted) the nanoseconds both spent blocked (neither on a CPU nor runnable, from
  /proc/thread-self/schedstat) and runnable.
- socket: a thread (wait_on_socket) blocks in recv() on a socket that stays silent until the
  end; the main thread sleeps. Prints that thread's id and its wall seconds in recv."""
import json, socket, sys, threading, time

def compute_slice(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1

def sleep_slice(seconds):
    time.sleep(seconds)

def schedstat():
    """This thread's (ns on a CPU, ns runnable waiting for one) so far; None without /proc
    (a chroot)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            run, wait, _ = map(int, f.read().split())
    except OSError:
        return None
    return run, wait

def contend(end):
    x = 0
    while time.monotonic() < end:
        x += 1

def contend_timed(end, out):
    """contend(), with what the thread spent blocked and runnable meanwhile (read outside
    contend: a GIL wait in those reads is not contend's)."""
    start, before = time.monotonic_ns(), schedstat()
    contend(end)
    after = schedstat()
    if before and after:  # blocked: neither running nor runnable (waiting for the GIL)
        run, wait = after[0] - before[0], after[1] - before[1]
        out.append({"blocked": time.monotonic_ns() - start - run - wait, "runnable": wait})

def wait_on_socket(sock, out):
    t = time.perf_counter()
    sock.recv(1)
    out["recv"] = time.perf_counter() - t

def main():
    seconds, scenario = float(sys.argv[1]), sys.argv[2]
    print("ready", flush=True)
    if sys.argv[3:] == ["hold"]:
        sys.stdin.readline()
    end = time.monotonic() + seconds
    if scenario == "sleep":
        spent = {"compute": 0.0, "sleep": 0.0}
        while time.monotonic() < end:
            for name, fn in (("compute", compute_slice), ("sleep", sleep_slice)):
                t = time.perf_counter()
                fn(0.02)
                spent[name] += time.perf_counter() - t
        result = spent
    elif scenario == "gil":
        spent = []
        threads = [threading.Thread(target=contend_timed, args=(end, spent),
                                    name=f"contender-{i}")
                   for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result = {"tids": [t.native_id for t in threads]}
        if len(spent) == 2:
            result["blocked_ns"] = sum(s["blocked"] for s in spent)
            result["runnable_ns"] = sum(s["runnable"] for s in spent)
    else:
        a, b = socket.socketpair()
        out = {}
        t = threading.Thread(target=wait_on_socket, args=(a, out), name="waiter")
        t.start()
        time.sleep(seconds)
        b.send(b"x")
        t.join()
        result = {"tid": t.native_id, "recv": out["recv"]}
    print(json.dumps(result), flush=True)
    sys.stdin.readline()

main()
