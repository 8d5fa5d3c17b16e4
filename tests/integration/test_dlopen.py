"""Interpreters that arrive by dlopen, long after exec (uWSGI's python3 plugin, mod_wsgi,
plpython3u): the zoo's pydlopen links nothing of Python and dlopens Debian's libpython3.11
PYDLOPEN_DELAY_MS after it starts, far past discovery's exec re-checks (the last at 180 ms).
The daemon, started first, must see it once it runs: the CPU sampler notes untracked
processes whose mappings changed (bpf/cpu.bpf.c, note_untracked)."""
import glob
import json
import os
import re
import time
import uuid

from conftest import ZOO
from daemon import Daemon, cpu_profiles
from pprof_raw import RawProfile

# Runs a second after Python is up (discovery has that long to see it on a CPU), then
# collects each generation a known number of times, burns CPU in hot_in_plugin, and reports
# gc.get_stats().
LATE = """
import gc, json, sys, time
print("ready", flush=True)
end = time.monotonic() + 1.0
while time.monotonic() < end:
    pass
for gen, n in ((0, 7), (1, 5), (2, 3)):
    for _ in range(n):
        gc.collect(gen)
def hot_in_plugin():
    end = time.monotonic() + 3
    while time.monotonic() < end:
        sum(range(500))
cpu = time.thread_time()
hot_in_plugin()
cpu = time.thread_time() - cpu
gc.disable()
print(json.dumps({"stats": gc.get_stats(), "hot_cpu": cpu}), flush=True)
sys.stdin.readline()
"""


def gc_counts(d, service):
    got = {}
    for gen, v in re.findall(rf'^python_gc_collections_total\{{service_name="{service}",'
                             r'generation="(\d)"\} (\S+)$', d.metrics(), re.M):
        got[int(gen)] = int(float(v))
    return got


def test_interpreter_loaded_by_dlopen_late_is_profiled_from_its_first_second(tmp_path, workload):
    service = f"plugin-{uuid.uuid4().hex[:6]}"
    store = str(tmp_path / "store")
    d = Daemon(tmp_path, "--store", store)
    w = workload(ZOO["py311-dlopen"], LATE,
                 env={"PYROMETER_SERVICE": service, "PYDLOPEN_DELAY_MS": "2500"})
    report = json.loads(w.proc.stdout.readline())
    # every collection the interpreter made, from its first (start-up's included)
    want = {g: s["collections"] for g, s in enumerate(report["stats"])}
    end = time.monotonic() + 10
    while gc_counts(d, service) != want and time.monotonic() < end:
        time.sleep(0.2)
    assert gc_counts(d, service) == want
    assert d.metric("pyrometer_discovery_notes_found_total") >= 1
    profiles = []
    end = time.monotonic() + 10
    while not profiles and time.monotonic() < end:
        time.sleep(0.5)
        profiles = cpu_profiles(glob.glob(os.path.join(store, service, "*.pb.gz")))
    w.proc.stdin.close()
    w.proc.wait(timeout=10)
    rc, _ = d.stop()
    assert rc == 0, d.log()
    profiles = cpu_profiles(glob.glob(os.path.join(store, service, "*.pb.gz")))
    samples = [s for p in profiles for s in RawProfile(p).samples]
    hot = sum(c for c, stack, _ in samples if "hot_in_plugin" in stack)
    cpu = report["hot_cpu"]  # the thread's own CPU time in hot_in_plugin: 99 samples a second
    # (up to a quarter more beside other busy tasks: the sampling timer's tick also ends
    # time slices, and a slice that ends at it is sampled in the task that had it)
    assert 0.75 * 99 * cpu - 5 <= hot <= 1.25 * 99 * cpu + 5, (hot, cpu)
