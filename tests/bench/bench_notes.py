"""What finding interpreters that arrive by dlopen costs (part of `make bench`): the daemon
beside busy processes that are not Python, in two runs of SECONDS each, side by side:
  steady: two CPU hogs whose mappings never change (noted once each);
  churn:  the same, plus one process whose mappings change all the time (glibc's malloc maps
          and unmaps its large blocks), noted once a second.
Per run: the sampler's run time per invocation (kernel.bpf_stats_enabled), the notes sent
and the daemon's own CPU time per second."""
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from daemon import Daemon  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "30"))
# mmap/munmap of 1 MiB blocks, forever: its map_count changes between any two samples
MAPPER = ["perl", "-e", "while (1) { my $x = 'x' x (1 << 20); }"]


def prog_stats(name):
    out = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True).stdout
    m = re.search(rf"name {name}\s.*?run_time_ns (\d+) run_cnt (\d+)", out, re.S)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def one(label, extra):
    procs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(2)]
    procs += [subprocess.Popen(a) for a in extra]
    with tempfile.TemporaryDirectory() as tmp:
        d = Daemon(Path(tmp), "--store", str(Path(tmp) / "store"), "--off-cpu", "false")
        try:
            time.sleep(3)
            t0, n0 = prog_stats("on_cpu_sample")
            notes0, cpu0 = d.metric("pyrometer_discovery_notes_total") or 0, \
                d.metric("pyrometer_cpu_seconds_total") or 0
            time.sleep(SECONDS)
            t1, n1 = prog_stats("on_cpu_sample")
            notes1, cpu1 = d.metric("pyrometer_discovery_notes_total"), \
                d.metric("pyrometer_cpu_seconds_total")
        finally:
            d.stop()
            for p in procs:
                p.kill()
                p.wait()
    per = (t1 - t0) / max(1, n1 - n0)
    print(f"notes: {label:7s} sampler {per:6.0f} ns per invocation ({n1 - n0} runs), "
          f"{(notes1 - notes0) / SECONDS:5.2f} looks/s, daemon CPU "
          f"{1000 * (cpu1 - cpu0) / SECONDS:5.1f} ms/s", flush=True)
    return per, (cpu1 - cpu0) / SECONDS


def main():
    subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=1"], check=True)
    try:
        steady = one("steady", [])
        churn = one("churn", [MAPPER])
    finally:
        subprocess.run(["sysctl", "-q", "kernel.bpf_stats_enabled=0"])
    print(f"notes: churn/steady: sampler {churn[0] / steady[0]:.2f}x, daemon CPU "
          f"{churn[1] / max(steady[1], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
