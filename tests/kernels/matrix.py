#!/usr/bin/env python3
"""The kernel matrix: boot each Debian cloud kernel under QEMU and run the smoke suite in it.

    matrix.py [SERIES ...]      default: 5.10 6.1 6.12 6.19 7.2 7.3 host

Each kernel comes from fetch.py (downloaded once, to /var/cache/pyrometer-kernels). The guest
is a busybox initramfs with the kernel's own virtio and virtiofs modules; it mounts this
host's root read-only over virtiofs (under a tmpfs overlay), so it runs this tree's
pyrometer and the zoo's interpreters as they are, and runs tests/kernels/smoke.py. "host"
runs the same suite here, on the host's own kernel. Prints a table of every feature on every
kernel: pass, fail, or unavailable with pyrometer's reason. Exits 1 if a feature failed, or
if one that every kernel from 5.17 on must have is unavailable there.
"""
import glob
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import fetch  # noqa: E402
from smoke_patterns import KERNEL_TROUBLE, reference_seconds  # noqa: E402


CACHE = os.environ.get("PYROMETER_KERNELS", "/var/cache/pyrometer-kernels")
PYROMETER = os.environ.get("PYROMETER", os.path.join(REPO, "build", "pyrometer"))
ZOO = os.environ.get("PYROMETER_ZOO", "/var/cache/pyrometer-zoo")
QEMU = "qemu-system-x86_64"
VIRTIOFSD = "/usr/lib/qemu/virtiofsd"  # qemu-system-common's, QEMU 7.2
BUSYBOX = "/bin/busybox"               # busybox-static: the initramfs has no libc
GUEST_MEMORY = "3G"
BOOT_TIMEOUT = int(os.environ.get("PYROMETER_KERNEL_TIMEOUT", "1200"))  # per kernel, seconds
# What the guest needs to reach the host's tree, in load order (dependencies are added).
MODULES = ["virtio_pci", "virtiofs", "overlay"]


def kernel_parts(unpacked):
    """(vmlinuz, release, modules dir) of an unpacked kernel: the image is boot/vmlinuz-REL
    up to 6.19, and lib/modules/REL/vmlinuz (linux-binary's) from 7.0."""
    found = [(path, os.path.basename(path)[len("vmlinuz-"):])
             for path in glob.glob(os.path.join(unpacked, "boot", "vmlinuz-*"))]
    found += [(path, os.path.basename(os.path.dirname(path)))
              for path in glob.glob(os.path.join(unpacked, "usr", "lib", "modules", "*",
                                                 "vmlinuz"))]
    if len(found) != 1:
        raise SystemExit(f"matrix: {unpacked}: expected one kernel image, found {found}")
    vmlinuz, release = found[0]
    for moddir in ("lib/modules", "usr/lib/modules"):
        d = os.path.join(unpacked, moddir, release)
        if os.path.isdir(d):
            return vmlinuz, release, d
    raise SystemExit(f"matrix: {unpacked}: no modules directory for {release}")


def module_bytes(ko):
    """A module's ELF image: 6.12's come xz-compressed, which busybox's insmod cannot load."""
    with open(ko, "rb") as f:
        data = f.read()
    return lzma.decompress(data) if ko.endswith(".xz") else data


def modinfo_depends(ko):
    """The module names a .ko depends on, from its .modinfo section (no kmod needed)."""
    with tempfile.NamedTemporaryFile(suffix=".ko") as f:
        f.write(module_bytes(ko))
        f.flush()
        info = subprocess.run(["objcopy", "-O", "binary", "--only-section=.modinfo", f.name,
                               "/dev/stdout"], capture_output=True, check=True).stdout
    for field in info.split(b"\0"):
        if field.startswith(b"depends="):
            return [d for d in field[len(b"depends="):].decode().split(",") if d]
    return []


def module_closure(moddir, wanted):
    """Paths of the wanted modules and what they depend on, dependencies first. A module built
    into this kernel has no .ko and is left out."""
    by_name = {}
    for ko in glob.glob(os.path.join(moddir, "kernel", "**", "*.ko*"), recursive=True):
        name = os.path.basename(ko).split(".ko")[0]
        by_name[name.replace("-", "_")] = ko
    order = []

    def visit(name):
        ko = by_name.get(name.replace("-", "_"))
        if ko is None or ko in order:
            return
        for dep in modinfo_depends(ko):
            visit(dep)
        order.append(ko)

    for name in wanted:
        visit(name)
    return order


def build_initramfs(unpacked, out):
    _, _, moddir = kernel_parts(unpacked)
    with tempfile.TemporaryDirectory() as root:
        for d in ("bin", "proc", "sys", "dev", "modules"):
            os.makedirs(os.path.join(root, d))
        shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
        shutil.copy(os.path.join(HERE, "init"), os.path.join(root, "init"))
        names = []
        for ko in module_closure(moddir, MODULES):
            name = os.path.basename(ko).split(".ko")[0] + ".ko"
            with open(os.path.join(root, "modules", name), "wb") as f:
                f.write(module_bytes(ko))
            names.append(name)
        with open(os.path.join(root, "modules.order"), "w") as f:
            f.write("\n".join(names) + "\n")
        files = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True,
                               check=True).stdout
        with open(out, "wb") as f:
            subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--owner=0:0"], cwd=root,
                           input=files.encode(), stdout=f, check=True)


# How QEMU runs the guest's two vCPUs: both on one host thread. With a thread each
# ("multi"), 7.2 guests die of "Oops: int3" in __schedule when the kernel patches its own
# text, with no BPF and no pyrometer at all: tests/kernels/tcg_control.py, toggling the
# sched_switch tracepoint through tracefs beside two host CPU hogs, panicked 3 runs of 5
# (16-30 s after boot) with "multi" and none of 4 with "single". Guests take about as long
# here either way (2 host CPUs, shared with the hogs of make test-load).
TCG_THREADS = "single"

# The host's speed on smoke.reference_seconds()'s task, for the guests' load-time budget
# (set by main before the first boot).
HOST_REF = 0.0


def boot(series, work):
    """Boots the kernel with the smoke suite; returns (console lines, seconds)."""
    unpacked = fetch.fetch(series, CACHE)
    vmlinuz, release, _ = kernel_parts(unpacked)
    initrd = os.path.join(work, f"initrd-{series}.cpio")
    build_initramfs(unpacked, initrd)
    sock = os.path.join(work, f"virtiofs-{series}.sock")
    console = os.path.join(work, f"console-{series}.log")
    fsd = subprocess.Popen([VIRTIOFSD, f"--socket-path={sock}", "-o", "source=/",
                            "-o", "cache=always",
                            # pivot_root to / fails (EBUSY); a chroot to / is a no-op
                            "-o", "sandbox=chroot"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.1)
    else:
        fsd.kill()
        raise SystemExit(f"matrix: virtiofsd did not start: {fsd.stderr.read().decode()}")
    append = " ".join(["console=ttyS0", "panic=-1", "quiet", "loglevel=5",
                       f"pyrometer.repo={REPO}", f"pyrometer.binary={PYROMETER}",
                       f"pyrometer.zoo={ZOO}", f"pyrometer.hostref={HOST_REF:.4f}"])
    argv = [QEMU, "-accel", f"tcg,thread={TCG_THREADS}", "-cpu", "max", "-smp", "2",
            "-m", GUEST_MEMORY, "-nodefaults", "-no-reboot", "-display", "none",
            "-kernel", vmlinuz, "-initrd", initrd, "-append", append,
            "-serial", f"file:{console}",
            "-object", f"memory-backend-memfd,id=mem,size={GUEST_MEMORY},share=on",
            "-numa", "node,memdev=mem",
            "-chardev", f"socket,id=fs,path={sock}",
            "-device", "vhost-user-fs-pci,chardev=fs,tag=host"]
    start = time.monotonic()
    qemu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        qemu.wait(timeout=BOOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        qemu.kill()
        qemu.wait()
    finally:
        fsd.kill()
        fsd.wait()
    took = time.monotonic() - start
    with open(console, errors="replace") as f:
        lines = f.read().splitlines()
    if qemu.returncode != 0:
        lines.append(f"KERNELS-GUEST-ERROR qemu exited {qemu.returncode}: "
                     + qemu.stderr.read().decode(errors="replace").strip())
    return release, lines, took


def results_in(lines):
    """The smoke suite's results, and whatever went wrong before it could report."""
    results, problems = {}, []
    for line in lines:
        if line.startswith("SMOKE-RESULT "):
            r = json.loads(line[len("SMOKE-RESULT "):])
            results[r["feature"]] = (r["status"], r["detail"])
        elif "KERNELS-GUEST-ERROR" in line or KERNEL_TROUBLE.search(line):
            problems.append(line.strip())
        elif line.startswith("KERNELS-GUEST-DONE") and line.split()[1:] != ["0"]:
            problems.append("the smoke suite " + ("exited " + line.split()[1] if line.split()[1:]
                                                  else "did not finish"))
    return results, problems


def run_host():
    """The suite on this host's own kernel."""
    env = {**os.environ, "PYROMETER": PYROMETER, "PYROMETER_ZOO": ZOO,
           "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "smoke.py")], env=env,
                       capture_output=True, text=True, timeout=BOOT_TIMEOUT)
    sys.stderr.write(r.stderr)
    lines = r.stdout.splitlines()
    if r.returncode != 0:
        lines.append(f"KERNELS-GUEST-ERROR smoke.py exited {r.returncode}")
    return os.uname().release, lines, time.monotonic() - start


FEATURES = ["bpf budget", "ps", "cpu", "cpu deep, [gc]", "gc", "calls", "imports",
            "daemon /metrics", "daemon profile", "daemon stop", "stress", "kernel log"]
# Every kernel from this release on must pass everything (the promise: 6.1 and later).
FULL_FROM = (6, 1)


def series_of(release):
    return tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", release).groups())


def verdict(release, results, problems):
    """What is wrong with one kernel's results, as a list of sentences."""
    wrong = list(problems)
    for f in FEATURES:
        status, detail = results.get(f, ("missing", "no result"))
        if status == "fail" or status == "missing":
            wrong.append(f"{f}: {status}: {detail}")
        elif status == "unavailable" and (series_of(release) >= FULL_FROM or f == "ps"):
            wrong.append(f"{f}: unavailable on {release}, which must run it: {detail}")
        elif status == "unavailable" and " lacks " not in detail:
            # only a missing kernel feature excuses a capability; a verifier that refuses
            # our program on a kernel that has the features is our bug
            wrong.append(f"{f}: unavailable for a reason other than a missing feature: {detail}")
    return wrong


def budget_figures(detail):
    """' (LARGEST insns, SECONDS s)' from the bpf budget's detail: the figures the budget
    holds, in the table itself (SECONDS at the host's speed inside a guest)."""
    most = re.search(r"largest (\d+) insns", detail)
    load = re.search(r"\(([\d.]+) s at the host's speed", detail) or \
        re.search(r"all loaded in ([\d.]+) s", detail)
    return f" ({most.group(1)} insns, {load.group(1)} s)" if most and load else ""


def keep_console(release, lines):
    """A failed guest's whole console goes beside the binary (build/console-RELEASE.log): an
    oops's first lines say what happened, its last forty rarely do."""
    path = os.path.join(os.path.dirname(PYROMETER), f"console-{release}.log")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"matrix: {release}: the whole console is in {path}", file=sys.stderr)


def table(rows):
    """rows: (release, results, seconds). Cells say pass / fail / unavailable [n]; the
    notes under the table give each n's reason and each failure's detail."""
    notes, cells = [], []
    for release, results, _ in rows:
        col = []
        for f in FEATURES:
            status, detail = results.get(f, ("missing", "no result"))
            if status == "pass":
                col.append("pass" + budget_figures(detail) if f == "bpf budget" else "pass")
                continue
            if detail not in notes:
                notes.append(detail)
            col.append(f"{status} [{notes.index(detail) + 1}]")
        cells.append(col)
    heads = [f"{release} ({secs:.0f} s)" for release, _, secs in rows]
    width = [max(len(h), *(len(c) for c in col)) for h, col in zip(heads, cells)]
    fw = max(map(len, FEATURES))
    out = [f"| {'feature'.ljust(fw)} | " + " | ".join(h.ljust(w) for h, w in zip(heads, width))
           + " |", "|---|" + "|".join("---" for _ in heads) + "|"]
    for i, f in enumerate(FEATURES):
        out.append(f"| {f.ljust(fw)} | "
                   + " | ".join(col[i].ljust(w) for col, w in zip(cells, width)) + " |")
    out.append("")
    out += [f"[{n}] {text}" for n, text in enumerate(notes, 1)]
    return "\n".join(out)


def main():
    wanted = sys.argv[1:] or ["5.10", "6.1", "6.12", "6.19", "7.2", "7.3", "host"]
    for s in wanted:
        if s != "host" and s not in fetch.SERIES:
            raise SystemExit(f"matrix: unknown kernel {s!r} (known: {', '.join(fetch.SERIES)}, host)")
    for tool in (QEMU, VIRTIOFSD, BUSYBOX, "cpio"):
        if not shutil.which(tool):
            raise SystemExit(f"matrix: {tool} is missing (make deps installs it)")
    if not os.path.exists(PYROMETER):
        raise SystemExit(f"matrix: {PYROMETER} is missing; build it with make")
    if b"INTERP" in subprocess.run(["readelf", "-lW", BUSYBOX], capture_output=True).stdout:
        raise SystemExit(f"matrix: {BUSYBOX} is dynamically linked; the initramfs needs "
                         "busybox-static's")
    for path in (REPO, PYROMETER, ZOO):
        if re.search(r"\s", path):  # they travel on the kernel command line
            raise SystemExit(f"matrix: {path!r} contains white space; the guest cannot be told it")
    global HOST_REF
    HOST_REF = reference_seconds()
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="pyrometer-kernels-") as work:
        for s in wanted:
            print(f"matrix: {s}: {'running on the host' if s == 'host' else 'booting'}",
                  file=sys.stderr, flush=True)
            release, lines, secs = run_host() if s == "host" else boot(s, work)
            results, problems = results_in(lines)
            rows.append((release, results, secs))
            wrong = verdict(release, results, problems)
            if wrong:
                failed.append((release, wrong))
                if s != "host":
                    print(f"matrix: {release}: console tail:\n  " + "\n  ".join(lines[-40:]),
                          file=sys.stderr)
                    keep_console(release, lines)
    print(table(rows))
    with open(os.path.join(os.path.dirname(PYROMETER), "kernels.json"), "w") as f:
        json.dump([{"release": r, "seconds": round(t), "results": res} for r, res, t in rows],
                  f, indent=1)
    for release, wrong in failed:
        print(f"matrix: FAILED on {release}:\n  " + "\n  ".join(wrong), file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
