"""The command line: help, version, bad input and missing privileges."""
import os
import stat
import subprocess

import pytest

from conftest import PYROMETER, run_pyrometer

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


def test_help_and_version():
    commands = [l.split()[0] for l in run_pyrometer("--help").stdout.splitlines()
                if l.startswith("  ") and not l.startswith("   ")]
    assert commands == ["run", "ps", "record", "gc", "inspect", "version", "help"], commands
    assert "--watch" in run_pyrometer("ps", "--help").stdout
    assert run_pyrometer("version").stdout.startswith("pyrometer ")


@pytest.mark.parametrize("args,first_line", [
    (["frobnicate"], "pyrometer: error: unknown command 'frobnicate' (see 'pyrometer --help')"),
    (["ps", "--bogus"], "ps: unrecognized option '--bogus'"),
    (["ps", "extra"], "pyrometer: error: ps: unexpected argument 'extra'"),
    ([], "usage: pyrometer COMMAND [OPTIONS]"),
])
def test_bad_usage_exits_2_with_a_message(args, first_line):
    r = run_pyrometer(*args, check=False)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines()[0] == first_line, r.stderr


@pytest.mark.parametrize("args,missing", [
    (["ps"], ["CAP_SYS_PTRACE"]),
    (["ps", "--watch"], ["CAP_SYS_PTRACE", "CAP_BPF", "CAP_PERFMON"]),
    (["record", "-a", "-d", "1", "-o", "/tmp/x.folded"], ["CAP_SYS_PTRACE", "CAP_BPF", "CAP_PERFMON"]),
])
def test_unprivileged_user_gets_one_line_naming_what_is_missing(args, missing):
    r = subprocess.run(NOBODY + [PYROMETER, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "root" in lines[0]
    for cap in missing:
        assert cap in lines[0]
    assert "libbpf" not in r.stderr


def test_root_without_bpf_capabilities_is_refused():
    """Root whose bounding set lacks CAP_BPF and CAP_PERFMON (a locked-down container)."""
    r = subprocess.run(["setpriv", "--bounding-set=-bpf,-perfmon", PYROMETER, "ps", "--watch"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    line = r.stderr.strip()
    assert "missing: CAP_PERFMON, CAP_BPF" in line
    assert len(line.splitlines()) == 1


def test_a_rate_above_the_kernels_limit_is_named(tmp_path):
    """-F above kernel.perf_event_max_sample_rate: the limit is said, not just EINVAL."""
    knob = "/proc/sys/kernel/perf_event_max_sample_rate"
    with open(knob) as f:
        old = f.read().strip()
    try:
        with open(knob, "w") as f:
            f.write("3000")
        r = run_pyrometer("record", "-a", "-F", "5000", "-d", "1", "-o",
                          str(tmp_path / "x.folded"), check=False)
    finally:
        with open(knob, "w") as f:
            f.write(old)
    assert r.returncode == 1
    assert "5000 Hz is above this kernel's limit of 3000" in r.stderr, r.stderr


@pytest.mark.parametrize("mode", ["cpu", "imports"])
def test_output_into_a_device_writes_into_it_and_keeps_it(tmp_path, mode):
    """`-o /dev/null` as root: the profile goes into the device, which stays a device (a
    rename over it once replaced /dev/null with a regular file). Checked on a null device of
    the test's own."""
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    r = subprocess.run([PYROMETER, "record", "--mode", mode, "-a", "-d", "0.5", "-o", str(null),
                        "--format", "folded"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null"]  # no temporary file left beside it
