"""Imports whose times are known. Writes a package tree into a fresh directory on sys.path,
prints "ready", and with "hold" waits for a line on stdin first; then imports (each outermost
import on a line of its own, named in the JSON it prints), prints what it did as JSON and
waits for stdin to close. Run it under -X importtime to compare with the interpreter's own
figures. Scenarios, all in one run:
- tree: imp_root imports imp_a (which imports imp_c, sleeping 0.20 s, then sleeps 0.30 s) and
  imp_b (sleeps 0.10 s);
- failed: imp_missing does not exist (ImportError); imp_bad sleeps 0.05 s, then raises;
- circular: imp_x imports imp_y, which imports imp_x (half-initialised, no new import);
  each sleeps 0.03 s;
- threads: two threads import at once: imp_t1 (imports imp_t1_sub, sleeping 0.15 s, then
  sleeps 0.10 s) and imp_t2 (sleeps 0.20 s)."""
import json, os, sys, tempfile, threading

MODULES = {
    "imp_root": "import imp_a\nimport imp_b\n",
    "imp_a": "import time\nimport imp_c\ntime.sleep(0.30)\n",
    "imp_c": "import time\ntime.sleep(0.20)\n",
    "imp_b": "import time\ntime.sleep(0.10)\n",
    "imp_bad": "import time\ntime.sleep(0.05)\nraise ValueError('imp_bad fails on purpose')\n",
    "imp_x": "import time\nimport imp_y\ntime.sleep(0.03)\n",
    "imp_y": "import time\nimport imp_x\ntime.sleep(0.03)\n",
    "imp_t1": "import time\nimport imp_t1_sub\ntime.sleep(0.10)\n",
    "imp_t1_sub": "import time\ntime.sleep(0.15)\n",
    "imp_t2": "import time\ntime.sleep(0.20)\n",
}

where = tempfile.mkdtemp(prefix="pyro-imports-")
for name, body in MODULES.items():
    with open(os.path.join(where, name + ".py"), "w") as f:
        f.write(body)
sys.path.insert(0, where)
import time  # the stdlib modules the scenarios use, loaded before the recording matters
print("ready", flush=True)
if "hold" in sys.argv[1:]:
    sys.stdin.readline()

lines = {}


def line_of(statement):
    """The number of the line of this file that holds just this statement."""
    with open(__file__) as f:
        for n, text in enumerate(f, 1):
            if text.strip() == statement:
                return n


def in_thread(name):
    __import__(name)


import imp_root
try:
    import imp_missing
except ImportError:
    pass
try:
    import imp_bad
except ValueError:
    pass
import imp_x
threads = [threading.Thread(target=in_thread, args=(m,)) for m in ("imp_t1", "imp_t2")]
for t in threads:
    t.start()
for t in threads:
    t.join()
for m in ("imp_root", "imp_missing", "imp_bad", "imp_x"):
    lines[m] = line_of("import " + m)
lines["in_thread"] = line_of("__import__(name)")
print(json.dumps({"lines": lines}), flush=True)
sys.stdin.read()
