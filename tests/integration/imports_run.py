"""pyrometer record --mode imports run against workloads/imports.py, with what its modules'
bodies sleep and how to read the folded output: shared by test_imports.py and the kernel matrix
(tests/kernels/smoke.py)."""
import json
import re
import subprocess
import threading
import time

from conftest import PYROMETER, ZOO, workload_script

# what each module's body sleeps, nested imports included (workloads/imports.py)
EXPECTED = {"imp_root": 0.60, "imp_a": 0.50, "imp_c": 0.20, "imp_b": 0.10, "imp_bad": 0.05,
            "imp_x": 0.06, "imp_y": 0.03, "imp_t1": 0.25, "imp_t1_sub": 0.15, "imp_t2": 0.20}
PATHS = {"imp_root": ("imp_root",), "imp_a": ("imp_root", "imp_a"),
         "imp_c": ("imp_root", "imp_a", "imp_c"), "imp_b": ("imp_root", "imp_b"),
         "imp_bad": ("imp_bad [failed]",), "imp_x": ("imp_x",), "imp_y": ("imp_x", "imp_y"),
         "imp_t1": ("imp_t1",), "imp_t1_sub": ("imp_t1", "imp_t1_sub"), "imp_t2": ("imp_t2",)}
PY_FRAME = re.compile(r"(.+) \((.*):(\d+)\)$")


def near(measured, expected, rel, abs_s):
    return abs(measured - expected) <= rel * expected + abs_s


def reference_time(r, module):
    """-X importtime's cumulative seconds for module, or None when the interpreter's own
    line for it was garbled: two threads importing at once (imp_t1, imp_t2) write their
    lines to stderr in pieces that can interleave. Then its name must still be in the text,
    and the caller checks against the sleeps alone."""
    if module in r.importtime:
        return r.importtime[module]
    text = r.importtime_path.read_text()
    assert module in text, (module, text[-2000:])
    return None


def importtime(text):
    """module -> cumulative seconds, from -X importtime's lines."""
    out = {}
    for m in re.finditer(r"^import time:\s+(\d+) \|\s+(\d+) \| *(\S+)$", text, re.M):
        out[m.group(3)] = int(m.group(2)) / 1e6
    return out


class Recorded:
    """`record --mode imports -p PID` over the imports of workloads/imports.py, which waits
    ("hold") until the recorder is ready; its -X importtime output goes to a file."""

    def __init__(self, name, workload, tmp_path, fmt="folded"):
        entry = {**ZOO[name], "argv": ZOO[name]["argv"] + ["-X", "importtime"]}
        self.importtime_path = tmp_path / f"importtime-{name}.txt"
        self.out_path = tmp_path / f"imports-{name}.{fmt}"
        with open(self.importtime_path, "w") as err:
            w = workload(entry, workload_script("imports.py"), ["hold"], stderr=err)
        self.proc = subprocess.Popen([PYROMETER, "record", "--mode", "imports", "-p",
                                      str(w.pid), "-v", "--format", fmt, "-o",
                                      str(self.out_path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err = []
        started = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.err.append(line)
                if "recording imports" in line:
                    started.set()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        end = time.monotonic() + 30
        while not started.wait(0.2) and self.proc.poll() is None and time.monotonic() < end:
            pass
        if not started.is_set():
            reader.join(timeout=10)
            raise AssertionError("record --mode imports did not start: " + "".join(self.err))
        w.proc.stdin.write("go\n")
        w.proc.stdin.flush()
        self.workload = json.loads(w.proc.stdout.readline())
        self.script = w.script_in_root
        w.proc.stdin.close()  # it exits, and the recording ends with it
        assert self.proc.wait(timeout=60) == 0, "".join(self.err)
        reader.join(timeout=30)
        self.stderr = "".join(self.err)
        self.importtime = importtime(self.importtime_path.read_text())


def folded(path):
    """[(python frames root first, modules root first, microseconds)]."""
    rows = []
    for line in path.read_text().splitlines():
        stack, value = line.rsplit(" ", 1)
        frames = stack.split(";")[1:]  # after comm:pid
        k = 0
        while k < len(frames) and PY_FRAME.match(frames[k]):
            k += 1
        rows.append((frames[:k], tuple(frames[k:]), int(value)))
    return rows


def inclusive(rows, path):
    """Seconds spent in the imports at this path of modules, nested ones included."""
    return sum(us for _, mods, us in rows if mods[:len(path)] == path) / 1e6


def importer(rows, module):
    """(function, file, line) of the Python frame that made an outermost import."""
    found = {PY_FRAME.match(py[-1]).groups() for py, mods, _ in rows
             if mods[:1] == (module,) and py}
    assert len(found) == 1, (module, found)
    name, file, line = found.pop()
    return name, file, int(line)
