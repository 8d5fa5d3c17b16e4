"""Processes as containers run them, built from the kernel's own pieces: a pid namespace (the
interpreter is pid 1 inside), a mount namespace with its own root (sid's 3.14 or bullseye's
3.9 chroot), and the cgroup paths Docker and the kubelet create (made here in the cgroup v2
hierarchy). The daemon is started first, under the unit's capabilities, and must name the
process by its host pid, give it its container id and pod uid, read its files inside its
root, sample it, and count its collections. Also: how the command lines of ASGI/WSGI
servers and Celery name services, and the service-env key."""
import os
import re
import subprocess
import time
import uuid

import pytest

from conftest import ZOO, ps_json, run_storm, service_name, wait_for
from daemon import cpu_profiles, daemon_as_deployed, gc_count, stop_leaving_no_trace
from pprof_raw import RawProfile

CGROUP2 = next((line.split()[1] for line in open("/proc/mounts")
                if line.split()[2] == "cgroup2"), None)  # unified, or hybrid's unified/

BUSY = """
import sys, time
print("ready", flush=True)
def spin():
    end = time.monotonic() + 600
    while time.monotonic() < end:
        pass
spin()
"""


class Container:
    """argv run in new pid and mount namespaces, chrooted into root, inside the cgroup
    `cgroup` (a path under the v2 hierarchy, made here), with PYROMETER_SERVICE=service."""

    def __init__(self, cgroup, root, argv, service, script=None):
        assert CGROUP2, "no cgroup v2 hierarchy mounted: the container tests need one"
        self.cgroup = os.path.join(CGROUP2, cgroup)
        # the directories made here, deepest last: stop() removes them all, parents included
        self.made = []
        for i in range(1, len(cgroup.split("/")) + 1):
            path = os.path.join(CGROUP2, *cgroup.split("/")[:i])
            if not os.path.isdir(path):
                os.mkdir(path)
                self.made.append(path)
        self.script = None
        if script:
            self.script = f"/tmp/ctr-{uuid.uuid4().hex[:8]}.py"
            with open(os.path.join(root, self.script.lstrip("/")), "w") as f:
                f.write(script)
            argv = argv + [self.script]
        inner = " ".join(["exec", "unshare", "--pid", "--mount", "--fork", "--kill-child",
                          "chroot", root] + argv)
        self.proc = subprocess.Popen(
            ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && {inner}'],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYROMETER_SERVICE": service})
        self.root, self.service, self.pid = root, service, None
        try:
            assert self.proc.stdout.readline().strip() == "ready"
            self.pid = wait_for(lambda: next((pid for pid, e in ps_json().items()
                                              if e["service_name"] == service), None), 15,
                                f"{service} listed by pyrometer ps")
        except BaseException:  # the caller never gets an object to stop()
            self.stop()
            raise

    def stop(self):
        self.proc.kill()  # unshare --kill-child takes the namespace's pid 1 with it
        self.proc.wait()
        end = time.monotonic() + 10
        while self.pid and os.path.exists(f"/proc/{self.pid}") and time.monotonic() < end:
            time.sleep(0.1)
        for path in reversed(self.made):
            remove_cgroup(path)
        if self.script:
            os.unlink(os.path.join(self.root, self.script.lstrip("/")))


DOCKER_ID = uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex digits
POD_UID = str(uuid.uuid4())
CRI_ID = uuid.uuid4().hex + uuid.uuid4().hex

CGROUPS = {
    # Docker with the systemd cgroup driver
    "docker": (f"system.slice/docker-{DOCKER_ID}.scope", DOCKER_ID, None),
    # the kubelet (systemd driver, '_' for '-' in the pod uid) and containerd
    "kubernetes": ("kubepods.slice/kubepods-burstable.slice/"
                   f"kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice/"
                   f"cri-containerd-{CRI_ID}.scope", CRI_ID, POD_UID),
}


def remove_cgroup(path):
    """rmdir of a cgroup whose last process is exiting: busy until the kernel has let it go."""
    end = time.monotonic() + 10
    while True:
        try:
            return os.rmdir(path)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


class OverlayRoot:
    """The zoo's sid root as a container runtime assembles one: an overlay whose lower layer
    is the image and whose upper layer is on another filesystem (a tmpfs here; layers on
    different filesystems, as with composefs/erofs images or a live system's squashfs).
    /proc/PID/maps then shows the layer's device, not the overlay's: pyrometer did not see
    such processes at all until it took the identity from map_files."""

    def __init__(self, tmp_path):
        self.layer, self.path = tmp_path / "layer", tmp_path / "rootfs"
        self.layer.mkdir()
        self.path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "layer", str(self.layer)], check=True)
        try:
            (self.layer / "upper").mkdir()
            (self.layer / "work").mkdir()
            subprocess.run(["mount", "-t", "overlay", "-o",
                            f"lowerdir={ZOO['py314']['root']},upperdir={self.layer}/upper,"
                            f"workdir={self.layer}/work", "overlay", str(self.path)], check=True)
        except BaseException:  # the caller never gets an object to remove()
            subprocess.run(["umount", "-l", str(self.layer)], check=True)
            raise

    def remove(self):
        subprocess.run(["umount", "-l", str(self.path)], check=True)
        subprocess.run(["umount", "-l", str(self.layer)], check=True)


@pytest.mark.parametrize("kind,rootfs", [("docker", "overlay"), ("kubernetes", "chroot")])
def test_a_container_is_named_sampled_and_gc_counted(tmp_path, kind, rootfs):
    cgroup, container_id, pod_uid = CGROUPS[kind]
    overlay = OverlayRoot(tmp_path) if rootfs == "overlay" else None
    root = str(overlay.path) if overlay else ZOO["py314"]["root"]
    d, c = None, None
    try:
        d = daemon_as_deployed(tmp_path)  # first, as at boot
        service = service_name(kind)
        c = Container(cgroup, root, ZOO["py314"]["argv"], service, BUSY)
        e = ps_json()[c.pid]
        # the host pid, not the namespace's 1; the interpreter inside the container's root
        assert c.pid != 1 and e["root"] == root, e
        assert e["interpreter_path"] == ZOO["py314"]["argv"][0], e
        assert e["container_id"] == container_id and e["pod_uid"] == pod_uid, e
        store = tmp_path / "store" / service
        path = wait_for(lambda: cpu_profiles(store.glob("*.pb.gz"))[1:2], 30,
                        lambda: f"a second CPU profile: {d.log()}")
        prof = RawProfile(str(path[0]))
        # one process's samples, under its host pid, with its in-root file names
        assert {labels["pid"] for _, _, labels in prof.samples} == {str(c.pid)}
        assert any(name == "spin" and file == c.script
                   for name, file, _ in prof.locations.values()), prof.locations
        text = subprocess.run(["go", "tool", "pprof", "-raw", str(path[0])],
                              capture_output=True, text=True, timeout=120).stdout
        assert f"container_id={container_id}" in text, text[:2000]
        assert (f"pod_uid={pod_uid}" in text) == (pod_uid is not None), text[:2000]
        # collections of a program run in its own pid and mount namespaces in that root:
        # counted, for its service
        storm_service = service_name(kind + "-gc")
        seen, total = run_storm(["unshare", "--pid", "--mount", "--propagation", "unchanged",
                                 "--fork", "--kill-child"] +
                                ZOO["py314"]["argv"], root, storm_service)
        count = wait_for(lambda: gc_count(d, storm_service) >= seen and
                         gc_count(d, storm_service), 15, f"{seen} collections of {storm_service}")
        assert seen <= count <= total, (seen, count, total)
    finally:  # whatever failed, nothing stays mounted
        if c:
            c.stop()
        if d:
            stop_leaving_no_trace(d)
        if overlay:
            overlay.remove()


SERVER = """
import sys, time
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("server,args,expected", [
    ("gunicorn", ["-w", "2", "shop.wsgi:application"], "shop"),
    ("uvicorn", ["--port", "8000", "api.main:app"], "api"),
    ("hypercorn", ["-b", "0.0.0.0:8000", "chat.asgi:app"], "chat"),
    ("daphne", ["-p", "8001", "realtime.asgi:application"], "realtime"),
    ("celery", ["-A", "billing", "worker", "-l", "info"], "billing"),
    ("celery", ["--app=reports.tasks", "beat"], "reports"),
])
def test_servers_name_their_application(tmp_path, server, args, expected):
    """The launcher scripts these servers install run as `python .../bin/SERVER ARGS`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / server).write_text(SERVER)
    p = subprocess.Popen(["/usr/bin/python3.11", str(bindir / server), *args],
                         stdout=subprocess.PIPE, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYROMETER_SERVICE"})
    try:
        assert p.stdout.readline().strip() == "ready"
        e = ps_json()[p.pid]
        assert e["service_name"] == expected, e
    finally:
        p.kill()
        p.wait()


def test_service_env_keys_name_services_in_their_order(tmp_path):
    """service-env: the first listed key the target sets names it; PYROMETER_SERVICE is not
    read unless listed."""
    d = daemon_as_deployed(tmp_path, "--service-env", "TEAM_SERVICE,APP_NAME")
    procs = []
    try:
        cases = {"payments-" + uuid.uuid4().hex[:6]: {"TEAM_SERVICE": None, "APP_NAME": "no"},
                 "ledger-" + uuid.uuid4().hex[:6]: {"APP_NAME": None}}
        for want, env in cases.items():
            env = {k: (want if v is None else v) for k, v in env.items()}
            env["PYROMETER_SERVICE"] = "ignored"
            procs.append(subprocess.Popen(
                ["/usr/bin/python3.11", "-c", SERVER], stdout=subprocess.PIPE, text=True,
                env={**os.environ, **env}))
            assert procs[-1].stdout.readline().strip() == "ready"
        for want in cases:
            wait_for(lambda: re.search(
                rf'^python_gc_tracing_available{{service_name="{want}"}} 1$', d.metrics(),
                re.M), 15, lambda: f"GC tracing of {want}: {d.metrics()}")
        assert 'service_name="ignored"' not in d.metrics()
    finally:
        for p in procs:
            p.kill()
            p.wait()
        stop_leaving_no_trace(d)

