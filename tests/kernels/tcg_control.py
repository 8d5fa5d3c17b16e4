"""A control experiment for the matrix, outside `make test`: does a kernel survive its own text
patching under QEMU's TCG, with no BPF and no pyrometer at all? Each guest toggles the
sched_switch tracepoint through tracefs (the static-branch patching in __schedule that
attaching a program there causes) while its CPUs are busy, for 150 s, beside two CPU hogs on
the host.

    python3 tests/kernels/tcg_control.py [--tcg multi|single] [--runs N] [SERIES]

Prints one line per run: the toggles done, or the kernel's trouble lines."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import matrix  # noqa: E402

TOGGLER = '''
import json, subprocess, time
hogs = [subprocess.Popen(["/bin/sh", "-c", "while :; do :; done"]) for _ in range(2)]
hogs.append(subprocess.Popen(["/bin/sh", "-c", "while :; do /bin/true; done"]))
enable = "/sys/kernel/tracing/events/sched/sched_switch/enable"
n, end = 0, time.monotonic() + 150
while time.monotonic() < end:
    for v in (b"1", b"0"):
        with open(enable, "wb") as f:
            f.write(v)
    n += 1
for p in hogs:
    p.kill()
print("SMOKE-RESULT " + json.dumps({"feature": "toggle", "status": "pass",
                                    "detail": f"{n} toggles"}), flush=True)
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcg", choices=("multi", "single"), default="multi")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("series", nargs="?", default="7.2")
    a = ap.parse_args()
    tree = tempfile.mkdtemp(prefix="pyrometer-tcg-")
    os.makedirs(os.path.join(tree, "tests", "kernels"))
    with open(os.path.join(tree, "tests", "kernels", "smoke.py"), "w") as f:
        f.write(TOGGLER)
    matrix.REPO = tree
    matrix.TCG_THREADS = a.tcg
    for i in range(a.runs):
        hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(2)]
        try:
            release, lines, took = matrix.boot(a.series, tree)
        finally:
            for h in hogs:
                h.kill()
        results, problems = matrix.results_in(lines)
        print(f"{a.series} ({release}) tcg={a.tcg} run {i + 1}: {took:.0f} s",
              results.get("toggle", ("", "no result"))[1], *problems[:2], flush=True)
    shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    main()
