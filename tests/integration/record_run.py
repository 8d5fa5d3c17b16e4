"""pyrometer record (CPU sampling) run against zoo workloads, and its folded output read:
shared by test_record.py, test_wall.py and the kernel matrix (tests/kernels/smoke.py)."""
import subprocess

from conftest import PYROMETER

def record(*args, timeout=60):
    r = subprocess.run([PYROMETER, "record", *args], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stderr


def record_held(w, *args, timeout=60):
    """record ARGS on a workload started with "hold": the workload runs only once record
    says it is sampling (its start-up, loading the BPF programs, took 0.45 s idle and 1.28 s
    beside two CPU hogs, most of a 1 s workload). Returns (exit code, stderr)."""
    rec = subprocess.Popen([PYROMETER, "record", "-v", *args], stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in rec.stderr:
            lines.append(line)
            if "sampling at" in line:
                w.proc.stdin.write("go\n")
                w.proc.stdin.flush()
                break
        lines += rec.stderr.readlines()
        return rec.wait(timeout=timeout), "".join(lines)
    finally:
        if rec.poll() is None:
            rec.kill()


def folded(path):
    with open(path) as f:
        return [(line.rsplit(" ", 1)[0].split(";"), int(line.rsplit(" ", 1)[1]))
                for line in f if line.strip()]
