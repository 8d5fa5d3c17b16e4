"""`pyrometer record` on every zoo interpreter, checked against what the workloads measure
of themselves and read back through independent consumers (go tool pprof, an XML parser)."""
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import PYROMETER, ZOO, run_pyrometer, workload_script
from record_run import folded, record, record_held
from pprof_raw import RawProfile, pprof_top

INTERPRETERS = ["py39", "py310", "py311", "py311-embedded", "py311-nousdt", "py312", "py313",
                "py314", "py314t", "py315"]
SPLIT_TOLERANCE_PP = 3.0


@pytest.mark.parametrize("name", INTERPRETERS)
def test_cpu_split_matches_the_workload(name, workload, tmp_path):
    w = workload(ZOO[name], workload_script("cpu_split.py"), ["6", "hold"])
    out = tmp_path / "split.pb.gz"
    # sampled from the workload's first slice (record's start-up took 1.2 s of a 4 s run
    # beside two hogs, leaving under 1,000 samples), until it exits
    rc, stderr = record_held(w, "-p", str(w.pid), "-F", "997", "-o", str(out))
    assert rc == 0, stderr
    measured = json.loads(w.proc.stdout.readline())

    prof = RawProfile(str(out))
    assert prof.period == round(1e9 / 997)
    in_fn = {fn: 0 for fn in measured}
    for count, stack, labels in prof.samples:
        assert labels["pid"] == str(w.pid)
        for fn in measured:
            if fn in stack:
                in_fn[fn] += count
    # the samples follow the CPU the functions got (their own thread clock), not the wall
    # clock: under load they get less of both
    cpu_samples = sum(measured.values()) * 997
    assert 0.6 * cpu_samples <= sum(in_fn.values()) <= 1.1 * cpu_samples, (in_fn, measured)
    assert sum(in_fn.values()) > 1000, stderr  # enough samples for the tolerance to mean much
    for fn in measured:
        got = 100 * in_fn[fn] / sum(in_fn.values())
        want = 100 * measured[fn] / sum(measured.values())
        assert abs(got - want) <= SPLIT_TOLERANCE_PP, f"{fn}: {got:.1f}% sampled, {want:.1f}% measured"
    assert pprof_top(str(out)) == "spin"
    said = re.search(r"^pyrometer: (\d+) samples from 1 processes in [\d.]+ s, (\d+) lost, "
                     r"([\d.]+)% of stacks resolved; wrote (.+) \(pprof\)$", stderr, re.M)
    assert said, stderr
    assert int(said.group(2)) == 0, stderr
    assert said.group(3) == "100.0" and said.group(4) == str(out), stderr
    assert int(said.group(1)) == sum(count for count, _, _ in prof.samples), stderr
    # files are named as the process sees them: each exists inside its root (a chroot's
    # files under the chroot), and the workload's own frames are the script's in-root path.
    # Frozen modules keep CPython's own name ("<frozen codecs>": stdin's readline decodes)
    root = ZOO[name]["root"]
    files = {file for _, file, _ in prof.locations.values() if file}
    assert w.script_in_root in files
    for file in files:
        if re.fullmatch(r"<frozen [\w.]+>", file):
            continue
        assert not file.startswith(root + "/") or root == "/", file
        assert os.path.exists(os.path.join(root, file.lstrip("/"))), file


MAX_FRAMES = 1024  # bpf/pyrometer.h PYRO_MAX_FRAMES


def deep_run(name, workload, tmp_path, depth):
    """Samples deep.py recursing DEPTH calls deep; returns (lines of its folded profile,
    the folded lines that reach deep_leaf, record's stderr)."""
    w = workload(ZOO[name], workload_script("deep.py"), ["2", str(depth), "hold"])
    out = tmp_path / "deep.folded"
    rc, stderr = record_held(w, "-p", str(w.pid), "-F", "199", "-o", str(out))
    assert rc == 0, stderr
    lines = folded(str(out))
    deep = [(frames, c) for frames, c in lines if any(f.startswith("deep_leaf ") for f in frames)]
    total = sum(c for _, c in lines)
    assert total > 100, stderr
    assert sum(c for _, c in deep) >= 0.95 * total, lines[:3]
    src = workload_script("deep.py").splitlines()
    loop_lines = {i + 1 for i, l in enumerate(src)
                  if "while time.monotonic() < end" in l or "x += 1" in l}
    for frames, _ in deep:
        # the line of the sampled instruction, from the version's own line table
        leaf_line = int(frames[-1].rsplit(":", 1)[1].rstrip(")"))
        assert leaf_line in loop_lines, f"deep_leaf sampled at line {leaf_line}"
        assert frames[0] == f"{ZOO[name]['argv'][0].rsplit('/', 1)[1][:15]}:{w.pid}"
        assert frames[-1].startswith("deep_leaf ")  # the leaf is kept
    return lines, deep, stderr


@pytest.mark.parametrize("name", INTERPRETERS)
def test_a_300_frame_stack_comes_out_whole(name, workload, tmp_path):
    """Deeper than a 16 KiB data-stack chunk holds (about 120 frames on 3.11+): the walk
    follows the chunks down to <module>, reading each with one window."""
    lines, deep, stderr = deep_run(name, workload, tmp_path, 300)
    for frames, _ in deep:
        # process, <module>, down(300) ... down(0), deep_leaf: nothing cut, nothing added
        assert frames[1].startswith("<module> "), frames[:3]
        assert len(frames) == 2 + 301 + 1
        assert all(f.startswith("down ") for f in frames[2:-1])
    assert not any("[truncated]" in frames for frames, _ in lines)
    assert re.search(r"truncated 0,", stderr), stderr
    if name not in ("py39",):  # 3.9's frames are heap objects, read a page at a time
        reads = re.search(r"reads: windows (\d+), pages \d+, single frames (\d+)", stderr)
        samples = int(re.search(r"kernel: samples (\d+)", stderr).group(1))
        # one window per chunk (3 here); a frame read alone only for an entry frame on
        # the C stack (3.13+: one per interpreter entry, 3.15: two)
        assert int(reads.group(1)) <= 4 * samples, stderr
        assert int(reads.group(2)) <= 2 * samples, stderr


@pytest.mark.parametrize("name", ["py39", "py311", "py314"])
def test_a_stack_past_the_limit_keeps_the_leaf_and_marks_truncation(name, workload, tmp_path):
    lines, deep, stderr = deep_run(name, workload, tmp_path, MAX_FRAMES + 100)
    for frames, _ in deep:
        assert frames[1] == "[truncated]"          # the root side was cut
        assert len(frames) == 2 + MAX_FRAMES        # process, marker, the leaf-most frames
        assert all(f.startswith("down ") for f in frames[2:-1])


GC_SHARE_TOLERANCE_PP = 5.0


@pytest.mark.parametrize("name", INTERPRETERS)
def test_gc_shows_as_a_gc_leaf_frame_in_its_share(name, workload, tmp_path):
    """[gc] comes from the interpreter's own GC state, read at each sample, not from USDT:
    the no-USDT build shows it too. Its share of the samples is the share of CPU the
    workload measured inside gc.collect(), and it sits on the frame that collected."""
    w = workload(ZOO[name], workload_script("gc_share.py"), ["3", "gc", "hold"])
    out = tmp_path / "gc.folded"
    rc, stderr = record_held(w, "-p", str(w.pid), "-F", "997", "-d", "4", "-o", str(out))
    assert rc == 0, stderr
    measured = json.loads(w.proc.stdout.readline())
    lines = folded(str(out))
    total = sum(c for _, c in lines)
    gc_stacks = [(frames, c) for frames, c in lines if frames[-1] == "[gc]"]
    in_gc = sum(c for _, c in gc_stacks)
    assert total > 1000, stderr
    got = 100 * in_gc / total
    want = 100 * measured["gc"] / (measured["gc"] + measured["compute"])
    assert abs(got - want) <= GC_SHARE_TOLERANCE_PP, f"[gc] {got:.1f}% sampled, {want:.1f}% measured"
    on_collect = sum(c for frames, c in gc_stacks if frames[-2].startswith("collect_now "))
    assert on_collect >= 0.95 * in_gc, gc_stacks[:5]
    assert all("[gc]" not in frames[:-1] for frames, _ in lines)  # only ever the leaf


@pytest.mark.parametrize("name", ["py311", "py311-nousdt", "py314"])
def test_a_process_that_never_collects_shows_no_gc_frame(name, workload, tmp_path):
    w = workload(ZOO[name], workload_script("gc_share.py"), ["3", "nogc", "hold"])
    out = tmp_path / "nogc.folded"
    rc, stderr = record_held(w, "-p", str(w.pid), "-F", "997", "-d", "4", "-o", str(out))
    assert rc == 0, stderr
    assert json.loads(w.proc.stdout.readline())["gc"] == 0
    lines = folded(str(out))
    assert sum(c for frames, c in lines if "compute" in ";".join(frames)) > 1000, stderr
    assert [frames for frames, _ in lines if "[gc]" in frames] == []
    assert re.search(r"gc: samples while collecting 0, gc state unreadable 0", stderr), stderr


@pytest.mark.parametrize("name", INTERPRETERS)
def test_threads_are_attributed_their_own_function(name, workload, tmp_path):
    w = workload(ZOO[name], workload_script("threads.py"), ["2", "hold"])
    ids = {int(k): v for k, v in json.loads(w.proc.stdout.readline()).items()}
    out = tmp_path / "threads.pb.gz"
    rc, stderr = record_held(w, "-p", str(w.pid), "-F", "499", "-o", str(out))
    assert rc == 0, stderr
    prof = RawProfile(str(out))
    # thread_name is the OS thread's name: from 3.14 CPython gives it threading.Thread.name
    # (threads.py names each thread after its function); before, a thread keeps the name
    # it was created with, the process's
    names_threads = tuple(map(int, w.entry["version"].split(".")[:2])) >= (3, 14)
    comm = open(f"/proc/{w.pid}/comm").read().strip()
    seen = {}
    for count, stack, labels in prof.samples:
        tid = int(labels["thread_id"])
        work = {f for f in stack if f.startswith("work_")}
        if tid in ids:
            assert work <= {ids[tid]}, f"thread {tid} ({ids[tid]}) sampled in {work}"
            assert labels["thread_name"] == (ids[tid] if names_threads else comm), labels
            seen[tid] = seen.get(tid, 0) + count
        assert labels["thread_name"]
    assert set(seen) == set(ids), "every thread should have been sampled"


@pytest.mark.parametrize("name", INTERPRETERS)
def test_record_all_profiles_a_process_started_later(name, workload, tmp_path):
    out = tmp_path / "all.folded"
    rec = subprocess.Popen([PYROMETER, "record", "-a", "-d", "3", "-v", "-o", str(out)],
                           stderr=subprocess.PIPE, text=True)
    try:
        for line in rec.stderr:  # wait until sampling has begun
            if "sampling at" in line:
                break
        w = workload(ZOO[name], workload_script("cpu_split.py"), ["1"])
        spent = json.loads(w.proc.stdout.readline())  # its own thread CPU time per function
        assert rec.wait(timeout=30) == 0
    finally:
        if rec.poll() is None:
            rec.kill()
    mine = [(frames, c) for frames, c in folded(str(out)) if frames[0].endswith(f":{w.pid}")]
    # 99 a second of the CPU time it had in its three functions (fewer than 99 when busy
    # CPUs leave it less), each sample once
    cpu = sum(spent.values())
    samples = sum(c for frames, c in mine
                  if any(f.split(" ", 1)[0] in spent for f in frames))
    assert 0.75 * 99 * cpu - 5 <= samples <= 1.25 * 99 * cpu + 5, (samples, spent)
    assert any(f.startswith(f"alpha ({w.script_in_root}:") for frames, _ in mine for f in frames), \
        sorted(mine, key=lambda m: -m[1])[:5]


FORKING = """
import os, sys, time
def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
def in_parent(): spin(1.0)
def in_child(): spin(1.0)
print("ready", flush=True)
sys.stdin.readline()
child = os.fork()
if child == 0:
    in_child()
    os._exit(0)
print(child, flush=True)
in_parent()
os.waitpid(child, 0)
"""


def test_record_p_follows_the_processes_it_forks(workload, tmp_path):
    """-p PID samples the processes PID forks too (README), each under its own pid and
    function, and ends when both have exited."""
    w = workload(ZOO["py311"], FORKING)
    out = tmp_path / "forks.folded"
    rc, stderr = record_held(w, "-p", str(w.pid), "-o", str(out))
    assert rc == 0, stderr
    child = int(w.proc.stdout.readline())
    rows = folded(str(out))
    by = lambda pid, fn: sum(c for frames, c in rows if frames[0].endswith(f":{pid}")
                             and any(f.startswith(fn + " (") for f in frames))
    # a second of CPU each (their own thread clocks), sampled at 99 Hz, as in the test above
    for pid, fn in ((w.pid, "in_parent"), (child, "in_child")):
        assert 0.75 * 99 - 5 <= by(pid, fn) <= 1.25 * 99 + 5, (pid, fn, rows)
    assert by(w.pid, "in_child") == 0 and by(child, "in_parent") == 0, rows


def test_svg_flame_graph_is_well_formed(workload, tmp_path):
    w = workload(ZOO["py311"], workload_script("cpu_split.py"), ["1", "hold"])
    out = tmp_path / "flame.svg"
    rc, stderr = record_held(w, "-p", str(w.pid), "-o", str(out))  # until it exits
    assert rc == 0, stderr
    root = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    titles = [t.text for t in root.iter(ns + "title")]
    assert any(t.startswith("alpha (") and "%" in t for t in titles)
    assert any(t.startswith(f"python3.11:{w.pid} (") for t in titles)


def test_record_stops_when_the_process_exits(workload, tmp_path):
    w = workload(ZOO["py39"], workload_script("cpu_split.py"), ["1", "hold"])
    start = time.monotonic()
    rc, stderr = record_held(w, "-p", str(w.pid), "-o", str(tmp_path / "x.folded"))
    assert rc == 0, stderr
    assert time.monotonic() - start < 20
    assert w.proc.poll() is not None, "record ended before the process it recorded"
    spent = json.loads(w.proc.stdout.readline())
    mine = [(frames, c) for frames, c in folded(str(tmp_path / "x.folded"))
            if frames[0].endswith(f":{w.pid}")]
    # the samples cover the process's whole second of CPU, not a part of it
    assert sum(c for _, c in mine) >= 0.6 * 99 * sum(spent.values()), (mine, spent)
    assert any(f.startswith(f"alpha ({w.script_in_root}:") for frames, _ in mine
               for f in frames), mine


@pytest.mark.parametrize("args,message", [
    (["-p", "999999999"], "record: a pid must be a number from 1 to 4194304, not '999999999'"),
    (["-o", "x.pb.gz"], "record: say what to profile: -p PID or -a"),
    (["-a", "-F", "0"], "record: the frequency (-F) must be a number from 1 to 10000, not '0'"),
    (["-a", "-F", "fast"],
     "record: the frequency (-F) must be a number from 1 to 10000, not 'fast'"),
    (["-a", "-F", "10001"],
     "record: the frequency (-F) must be a number from 1 to 10000, not '10001'"),
    (["-a", "-d", "-1"],
     "record: the duration (-d) must be a number from 0.001 to 31536000, not '-1'"),
    (["-a", "-o", "profile.weird"],
     "record: cannot tell the format of 'profile.weird' from its name: use --format"),
    (["-a", "--format", "xml"], "record: --format must be pprof, folded or svg, not 'xml'"),
])
def test_record_rejects_bad_input(args, message):
    r = run_pyrometer("record", *args, check=False)
    assert r.returncode == 2
    assert r.stderr == f"pyrometer: error: {message}\n", r.stderr


@pytest.mark.parametrize("name,kind", [("p.pprof", "pprof"), ("p.pb.gz", "pprof"),
                                       ("p.txt", "folded"), ("p.folded", "folded"),
                                       ("p.svg", "svg")])
def test_the_output_format_follows_the_name(name, kind, workload, tmp_path):
    """Without --format, -o's extension says the format (README's list), at 10000 Hz, the
    most -F allows."""
    w = workload(ZOO["py311"], workload_script("cpu_split.py"), ["1", "hold"])
    out = tmp_path / name
    rc, stderr = record_held(w, "-p", str(w.pid), "-F", "10000", "-o", str(out))
    assert rc == 0, stderr
    assert re.search(rf"; wrote {re.escape(str(out))} \({kind}\)$", stderr, re.M), stderr
    if kind == "pprof":
        prof = RawProfile(str(out))  # go tool pprof reads it
        assert prof.period == 100_000 and prof.samples
    elif kind == "folded":
        rows = folded(out)
        assert rows and all(stack[0] == f"python3.11:{w.pid}" for stack, _ in rows), rows[:3]
    else:
        assert ET.parse(out).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_record_refuses_an_unwritable_output_before_sampling(tmp_path):
    start = time.monotonic()
    r = run_pyrometer("record", "-a", "-d", "30", "-o", str(tmp_path / "no/such/dir/x.folded"),
                      check=False)
    assert r.returncode == 1
    assert "cannot write into" in r.stderr
    assert time.monotonic() - start < 20  # it did not record for 30 s first


def test_record_refuses_a_pid_that_is_gone_or_not_python(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        r = run_pyrometer("record", "-p", str(sleeper.pid), "-o", str(tmp_path / "x.folded"),
                          check=False)
        assert r.returncode == 1
        assert "not a Python process" in r.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    r = run_pyrometer("record", "-p", str(sleeper.pid), "-o", str(tmp_path / "x.folded"),
                      check=False)
    assert r.returncode == 1
    assert "no process" in r.stderr


SPIN_C = r"""
#include <pthread.h>
void *spin(void *arg) { (void)arg; for (;;) __asm__ volatile(""); return 0; }
int start(void)
{
	pthread_t t;
	if (pthread_create(&t, 0, spin, 0))
		return -1;
	pthread_setname_np(t, "c-spinner");
	return 0;
}
"""

NATIVE = """
import ctypes, sys, time
lib = ctypes.CDLL(sys.argv[1])
assert lib.start() == 0
print("ready", flush=True)
time.sleep(600)
"""


def test_a_native_thread_is_marked_and_named(workload, tmp_path):
    """A thread a C extension started (no PyThreadState): its samples end in
    `[native thread]`, with the thread's own name and the process's."""
    so = tmp_path / "spin.so"
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(so), "-x", "c", "-", "-lpthread"],
                   input=SPIN_C, text=True, check=True, timeout=60)
    w = workload(ZOO["py311"], NATIVE, [str(so)])
    out = tmp_path / "native.pb.gz"
    record("-p", str(w.pid), "-d", "2", "-o", str(out))
    prof = RawProfile(str(out))
    native = [(c, stack, labels) for c, stack, labels in prof.samples
              if labels["thread_name"] == "c-spinner"]
    assert native, prof.samples
    for c, stack, labels in native:
        assert stack[0] == "[native thread]", stack
        assert labels["process_name"] == "python3.11" and labels["pid"] == str(w.pid), labels
        assert labels["thread_id"] != str(w.pid), labels
    # the spinning thread is almost all of what was sampled: the main thread sleeps
    assert sum(c for c, _, _ in native) >= 0.9 * sum(c for c, _, _ in prof.samples)


# A C extension for the stack markers, built against 3.11's headers (the zoo's py311 is the
# host's Debian python3.11, whose executable exports the C API).
MARKERS_C = r"""
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void spin(double seconds)
{
	struct timespec t;
	double end;

	clock_gettime(CLOCK_MONOTONIC, &t);
	end = t.tv_sec + t.tv_nsec / 1e9 + seconds;
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while (t.tv_sec + t.tv_nsec / 1e9 < end);
}

/* A thread with a PyThreadState and no Python frame: it spins with the GIL released. */
static pthread_t bare_thread;
static double bare_seconds;

static void *bare(void *arg)
{
	PyGILState_STATE g = PyGILState_Ensure();
	PyThreadState *ts = PyEval_SaveThread();

	(void)arg;
	spin(bare_seconds);
	PyEval_RestoreThread(ts);
	PyGILState_Release(g);
	return NULL;
}

int start_bare(double seconds)
{
	bare_seconds = seconds;
	if (pthread_create(&bare_thread, NULL, bare, NULL))
		return -1;
	pthread_setname_np(bare_thread, "bare-tstate");
	return 0;
}

int join_bare(void) /* through ctypes.CDLL: the GIL is released while it waits */
{
	return pthread_join(bare_thread, NULL);
}

/* Spins with the GIL held (ctypes.PyDLL) and, if hide, the root side of this thread's
 * Python data stack unreadable: every page of the chunk but the two below its top, where
 * the leaf frames are. Nothing touches those frames until it returns. */
int spin_in_stack(double seconds, int hide)
{
	PyThreadState *ts = PyThreadState_Get();
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)ts->datastack_chunk + page - 1) & ~(page - 1);
	uintptr_t hi = ((uintptr_t)ts->datastack_top & ~(page - 1)) - page;

	if (!hide) {
		spin(seconds);
		return 0;
	}
	if (hi <= lo)
		return -1; /* not deep enough */
	if (mprotect((void *)lo, hi - lo, PROT_NONE))
		return -2;
	spin(seconds);
	return mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) ? -3 : 0;
}
"""

MARKERS_PY = """
import ctypes, sys
lib = ctypes.PyDLL(sys.argv[1])
lib.spin_in_stack.argtypes = [ctypes.c_double, ctypes.c_int]
bare = ctypes.CDLL(sys.argv[1])
bare.start_bare.argtypes = [ctypes.c_double]
def leaf(): return lib.spin_in_stack(3.0, sys.argv[2] == "hide")
def down(n): return down(n - 1) if n else leaf()
print("ready", flush=True)
sys.stdin.readline()
if sys.argv[2] == "bare":
    assert bare.start_bare(3.0) == 0
    rc = bare.join_bare()
else:
    rc = down(100)
print(rc, flush=True)
"""


@pytest.fixture
def markers_so(tmp_path):
    so = tmp_path / "markers.so"
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(so), "-x", "c", "-",
                    "-I/usr/include/python3.11", "-lpthread"],
                   input=MARKERS_C, text=True, check=True, timeout=60)
    return str(so)


def markers_run(workload, so, mode, tmp_path):
    """record on MARKERS_PY in mode; returns (folded stacks, root first, of what it sampled)."""
    w = workload(ZOO["py311"], MARKERS_PY, [so, mode, "hold"])
    out = tmp_path / f"{mode}.folded"
    rc, stderr = record_held(w, "-p", str(w.pid), "-F", "199", "-o", str(out))
    assert rc == 0, stderr
    assert w.proc.stdout.readline().strip() == "0"
    return folded(str(out))


def test_a_thread_with_no_python_frame_is_marked(workload, markers_so, tmp_path):
    """A thread that has a PyThreadState but has not called into Python (an extension's
    callback thread, the main thread before its first frame): `[no Python frames]`."""
    lines = markers_run(workload, markers_so, "bare", tmp_path)
    bare = [(frames, c) for frames, c in lines if frames[-1] == "[no Python frames]"]
    assert sum(c for _, c in bare) >= 0.9 * sum(c for _, c in lines), lines
    assert all(len(frames) == 2 for frames, _ in bare), bare  # process, marker


@pytest.mark.parametrize("hide", [False, True])
def test_an_unreadable_frame_ends_the_stack_with_partial_stack(workload, markers_so, tmp_path,
                                                               hide):
    """The root side of the stack made unreadable (PROT_NONE, as memory the kernel cannot
    read without a fault): the leaf frames are kept and the stack ends in `[partial stack]`
    where `<module>` would be. The same run without hiding is whole."""
    lines = markers_run(workload, markers_so, "hide" if hide else "whole", tmp_path)
    spinning = [(frames, c) for frames, c in lines if frames[-1].startswith("leaf ")]
    assert sum(c for _, c in spinning) >= 0.9 * sum(c for _, c in lines), lines
    for frames, _ in spinning:
        names = [f.split(" ", 1)[0] for f in frames[1:]]
        if hide:
            assert names[0] == "[partial" and "<module>" not in names, frames
            assert 2 <= names.count("down") < 100, frames  # the pages below the top
        else:
            assert names[:2] == ["<module>", "down"] and names.count("down") == 101, frames
