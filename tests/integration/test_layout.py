"""Every struct offset pyrometer uses, compared with what gdb reads from the DWARF of
Debian's -dbg packages (python3.9-dbg in the bullseye chroot, python3.11-dbg on the host,
python3.13/3.14/3.15-dbg in the sid chroot) and of the zoo's 3.10 and 3.12 (built from source
with -g). For 3.9 to 3.12 this checks pyrometer's tables; for 3.13+ it checks what pyrometer
read out of _Py_DebugOffsets."""
import json
import os
import re
import subprocess

import pytest

from conftest import ZOO, run_pyrometer

ASCII = "sizeof(PyASCIIObject)"
COMPACT = "sizeof(PyCompactUnicodeObject)"


def off(struct, field):
    return f"(long)&(({struct}*)0)->{field}"


COMMON = {
    "interp_next": off("PyInterpreterState", "next"),
    "tstate_next": off("PyThreadState", "next"),
    "tstate_thread_id": off("PyThreadState", "thread_id"),
    "ob_type": off("PyObject", "ob_type"),
    "code_filename": off("PyCodeObject", "co_filename"),
    "code_name": off("PyCodeObject", "co_name"),
    "code_firstlineno": off("PyCodeObject", "co_firstlineno"),
    "bytes_size": off("PyVarObject", "ob_size"),
    "bytes_sval": off("PyBytesObject", "ob_sval"),
    "unicode_state": off("PyASCIIObject", "state"),
    "unicode_length": off("PyASCIIObject", "length"),
    "unicode_ascii_size": ASCII,
    "unicode_compact_size": COMPACT,
    "runtime_interp_head": off("_PyRuntimeState", "interpreters.head"),
    "interp_gc_collecting": off("PyInterpreterState", "gc.collecting"),
}

PER_FAMILY = {
    "3.9": {
        "interp_threads_head": off("PyInterpreterState", "tstate_head"),
        "tstate_frame": off("PyThreadState", "frame"),
        "frame_previous": off("PyFrameObject", "f_back"),
        "frame_code": off("PyFrameObject", "f_code"),
        "frame_instr": off("PyFrameObject", "f_lasti"),
        "code_linetable": off("PyCodeObject", "co_lnotab"),
        "gil_offset": off("_PyRuntimeState", "ceval.gil"),
    },
    "3.10": {
        "interp_threads_head": off("PyInterpreterState", "tstate_head"),
        "tstate_frame": off("PyThreadState", "frame"),
        "frame_previous": off("PyFrameObject", "f_back"),
        "frame_code": off("PyFrameObject", "f_code"),
        "frame_instr": off("PyFrameObject", "f_lasti"),
        "code_linetable": off("PyCodeObject", "co_linetable"),
        "gil_offset": off("_PyRuntimeState", "ceval.gil"),
    },
    "3.11": {
        "interp_threads_head": off("PyInterpreterState", "threads.head"),
        "tstate_frame": off("PyThreadState", "cframe"),
        "cframe_current_frame": off("_PyCFrame", "current_frame"),
        "frame_previous": off("_PyInterpreterFrame", "previous"),
        "frame_code": off("_PyInterpreterFrame", "f_code"),
        "frame_instr": off("_PyInterpreterFrame", "prev_instr"),
        "code_adaptive": off("PyCodeObject", "co_code_adaptive"),
        "code_qualname": off("PyCodeObject", "co_qualname"),
        "code_linetable": off("PyCodeObject", "co_linetable"),
        "tstate_datastack": off("PyThreadState", "datastack_chunk"),
        "gil_offset": off("_PyRuntimeState", "ceval.gil"),
    },
    "3.13+": {
        "interp_threads_head": off("PyInterpreterState", "threads.head"),
        "tstate_frame": off("PyThreadState", "current_frame"),
        "frame_previous": off("_PyInterpreterFrame", "previous"),
        "frame_code": off("_PyInterpreterFrame", "f_executable"),
        "frame_instr": off("_PyInterpreterFrame", "instr_ptr"),
        "frame_owner": off("_PyInterpreterFrame", "owner"),
        "tstate_datastack": off("PyThreadState", "datastack_chunk"),
        "code_adaptive": off("PyCodeObject", "co_code_adaptive"),
        "code_qualname": off("PyCodeObject", "co_qualname"),
        "code_linetable": off("PyCodeObject", "co_linetable"),
        "gil_offset": off("PyInterpreterState", "_gil"),
    },
}

# 3.12 as 3.11, with frame owners and the GIL in the interpreter state
PER_FAMILY["3.12"] = {**PER_FAMILY["3.11"],
                      "frame_owner": off("_PyInterpreterFrame", "owner"),
                      "gil_offset": off("PyInterpreterState", "_gil")}

BINARIES = {
    "py39": ("3.9", "/usr/bin/python3.9"),
    "py310": ("3.10", None),  # built from source: its own debug info, argv in the zoo
    "py311": ("3.11", "/usr/bin/python3.11"),
    "py312": ("3.12", None),
    "py313": ("3.13+", "/usr/bin/python3.13"),
    "py314": ("3.13+", "/usr/bin/python3.14"),
    "py315": ("3.13+", "/usr/bin/python3.15"),
}


def debug_file(root, binary):
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True,
                              check=True).stdout
    if " .debug_info " in sections:  # built here, with -g
        return binary
    notes = subprocess.run(["readelf", "-n", binary], capture_output=True, text=True,
                           check=True).stdout
    build_id = re.search(r"Build ID: ([0-9a-f]+)", notes).group(1)
    path = os.path.join(root, "usr/lib/debug/.build-id", build_id[:2], build_id[2:] + ".debug")
    assert os.path.exists(path), f"no debug info for {binary} (is the -dbg package in the zoo?)"
    return path


def gdb_values(debug, exprs):
    args = ["gdb", "-batch", "-nx"]
    for e in exprs:
        args += ["-ex", f"print {e}"]
    out = subprocess.run(args + [debug], capture_output=True, text=True, timeout=120).stdout
    values = [int(v) for v in re.findall(r"^\$\d+ = (-?\d+)$", out, re.M)]
    assert len(values) == len(exprs), out
    return values


@pytest.mark.parametrize("name", sorted(BINARIES))
def test_offsets_match_debug_info(name):
    family, path = BINARIES[name]
    root = ZOO[name]["root"]
    path = path or ZOO[name]["argv"][0]
    binary = os.path.join(root, path.lstrip("/"))
    layout = json.loads(run_pyrometer("inspect", binary).stdout)["layout"]
    assert layout["ok"], layout
    expected = {**COMMON, **PER_FAMILY[family]}
    names = sorted(expected)
    got = gdb_values(debug_file(root, binary), [expected[n] for n in names])
    assert {n: layout[n] for n in names} == dict(zip(names, got))
