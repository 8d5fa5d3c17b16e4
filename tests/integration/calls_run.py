"""pyrometer record --mode calls run against calls_exact.py, and its known counts: shared by
test_calls.py, test_call_windows.py and the kernel matrix (tests/kernels/smoke.py)."""
import re
import subprocess
import threading
import time

from conftest import PYROMETER

# calls_exact.py's known counts. A generator's calls are its activations, one per entry
# into its frame: the first next() and every resume (N + 1 for N yields); on 3.11+ calling
# a generator function also runs its frame up to RETURN_GENERATOR, one activation more,
# whose function__entry has no function__return (pyrometer re-pairs at the caller's return).
EXPECTED = {"fib": 1973, "helper": 1000, "loop": 1, "gen": 51, "consume": 1, "boom": 7,
            "catch": 1, "main": 1}
GENERATORS_CREATED = 1


class Traced:
    """Starts `record --mode calls` on w, lets w make its calls, waits for the output."""

    def __init__(self, w, *args, duration="6"):
        self.proc = subprocess.Popen([PYROMETER, "record", "--mode", "calls", "-p", str(w.pid),
                                      "-d", duration, "-v", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err = []
        self.started = threading.Event()
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        assert self.started.wait(30), "record --mode calls did not start: " + "".join(self.err)
        t = time.monotonic()
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        assert w.proc.stdout.readline().strip() == "done"
        self.workload_s = time.monotonic() - t
        self.out = self.proc.stdout.read()
        self.proc.wait(timeout=60)
        reader.join(timeout=30)
        self.stderr = "".join(self.err)
        assert self.proc.returncode == 0, self.stderr

    def _read(self):
        for line in self.proc.stderr:
            self.err.append(line)
            if "tracing function calls" in line:
                self.started.set()


def table(out):
    """function -> (calls, incl_ms, excl_ms, p50, p99) from the table output."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+) \((.*)\)$", line)
        if m:
            rows[m.group(6)] = (int(m.group(1)), *m.group(2, 3, 4, 5))
    return rows
