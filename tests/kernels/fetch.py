#!/usr/bin/env python3
"""Fetch a Debian cloud kernel into a cache outside the tree, once, verified end to end.

    fetch.py SERIES [CACHE]     SERIES: 5.10, 6.1, 6.12, 6.19, 7.2 or 7.3;
                                CACHE: /var/cache/pyrometer-kernels

Prints the directory holding the unpacked packages (boot/vmlinuz-*, lib/modules/*). The chain
of trust is Debian's own: InRelease is checked with gpgv against the host's
debian-archive-keyring, Packages.xz against the SHA256 InRelease lists, and the .deb against
the SHA256 Packages lists. A second call finds the unpacked kernel and downloads nothing.

From 6.19 on Debian splits a kernel into linux-binary-* (vmlinuz) and linux-modules-*; both
are unpacked into one directory. The 6.19 series is pinned to 6.19.6, the build that refuses
the old stack walker: its modules package is no longer in any index, so its pool path and
hash are pinned here instead (taken from Debian's trixie-backports Packages when it was).
"""
import functools
import hashlib
import lzma
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Each series is the kernel of one Debian release: (archive, suite) pairs searched for the
# newest cloud-amd64 image of that series.
SERIES = {
    "5.10": [(MIRROR, "bullseye"), (SECURITY, "bullseye-security")],
    "6.1": [(MIRROR, "bookworm"), (SECURITY, "bookworm-security")],
    "6.12": [(MIRROR, "trixie"), (SECURITY, "trixie-security")],
    "6.19": [(MIRROR, "trixie-backports")],
    "7.2": [(MIRROR, "trixie-backports")],
    "7.3": [(MIRROR, "trixie-backports")],
}
# Series whose image is split (linux-binary + linux-modules), and a version a series is held
# at: the one whose verifier the matrix must keep meeting.
SPLIT = {"6.19", "7.2", "7.3"}
PINNED_VERSION = {"6.19": "6.19.6-2~bpo13+1"}
# Modules packages the index no longer lists: version -> (pool path, sha256).
PINNED_MODULES = {
    "6.19.6-2~bpo13+1": (
        "pool/main/l/linux/linux-modules-6.19.6+deb13-cloud-amd64_6.19.6-2~bpo13+1_amd64.deb",
        "47ed9f947a230fcc9d6164fb98775c837649671212d9ff46f095747783a6c56a"),
}


def get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def verified_release(archive, suite):
    """InRelease's signed text, after gpgv has checked it."""
    signed = get(f"{archive}/dists/{suite}/InRelease")
    with tempfile.NamedTemporaryFile() as f:
        f.write(signed)
        f.flush()
        out = subprocess.run(["gpgv", "--keyring", KEYRING, "--output", "-", f.name],
                             capture_output=True)
    if out.returncode != 0:
        raise SystemExit(f"fetch: {archive} {suite}: InRelease signature does not verify:\n"
                         + out.stderr.decode(errors="replace"))
    return out.stdout.decode()


def packages(archive, suite):
    """The main/amd64 Packages stanzas of a suite, each a dict, hash-checked."""
    release = verified_release(archive, suite)
    m = re.search(r"^ ([0-9a-f]{64}) +\d+ main/binary-amd64/Packages\.xz$", release.split(
        "SHA256:", 1)[1], re.M)
    if not m:
        raise SystemExit(f"fetch: {suite}: InRelease lists no main/binary-amd64/Packages.xz")
    xz = get(f"{archive}/dists/{suite}/main/binary-amd64/Packages.xz")
    if sha256(xz) != m.group(1):
        raise SystemExit(f"fetch: {suite}: Packages.xz does not match its InRelease hash")
    for stanza in lzma.decompress(xz).decode().split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.M))
        if fields:
            yield fields


def newer(a, b):
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0


def images(series, kind="image"):
    """The linux-KIND-SERIES.*-cloud-amd64[-unsigned] stanzas of the series' suites, newest
    first (an unsigned image before the signed one of the same version), with their archive."""
    name = re.compile(f"linux-{kind}-" + re.escape(series) + r"\.\d+([-+][\w.+-]*)?-cloud-amd64"
                      r"(-unsigned)?$")
    found = []
    for archive, suite in SERIES[series]:
        try:
            found += [(archive, p) for p in packages(archive, suite) if name.match(p["Package"])]
        except urllib.error.HTTPError as e:
            if e.code != 404:  # 404: a suite without security updates yet
                raise
    if series in PINNED_VERSION:
        found = [(a, p) for a, p in found if p["Version"] == PINNED_VERSION[series]]
    key = functools.cmp_to_key(lambda a, b: (-1 if newer(a[1]["Version"], b[1]["Version"]) else
                                             1 if newer(b[1]["Version"], a[1]["Version"]) else
                                             -a[1]["Package"].endswith("-unsigned")))
    return sorted(found, key=key)


def download(archive, path, want_sha256):
    deb = get(f"{archive}/{path}")
    if sha256(deb) != want_sha256:
        raise SystemExit(f"fetch: {path} does not match its hash")
    return deb


def unpack(deb, into):
    with tempfile.NamedTemporaryFile(suffix=".deb") as f:
        f.write(deb)
        f.flush()
        subprocess.run(["dpkg-deb", "-x", f.name, into], check=True)


def newest_deb(series, kind):
    """(archive, stanza, .deb bytes) of the newest package of a kind that downloads."""
    candidates = images(series, kind)
    if not candidates:
        raise SystemExit(f"fetch: no cloud-amd64 linux-{kind} of {series} in "
                         + ", ".join(s for _, s in SERIES[series]))
    for archive, p in candidates:  # an index can name a file its mirror does not hold yet
        try:
            return archive, p, download(archive, p["Filename"], p["SHA256"])
        except urllib.error.HTTPError as e:
            print(f"fetch: {p['Package']} {p['Version']}: {e}", file=sys.stderr)
    raise SystemExit(f"fetch: no linux-{kind} of {series} could be downloaded")


def modules_deb(series, version):
    """The linux-modules .deb of the same version as a split kernel's binary."""
    if version in PINNED_MODULES:
        path, digest = PINNED_MODULES[version]
        return path, download(SERIES[series][0][0], path, digest)
    for archive, p in images(series, "modules"):
        if p["Version"] == version:
            return p["Filename"], download(archive, p["Filename"], p["SHA256"])
    raise SystemExit(f"fetch: no linux-modules {version} of {series} in the index or pinned")


def fetch(series, cache):
    if series not in SERIES:
        raise SystemExit(f"fetch: unknown kernel series {series!r} (known: {', '.join(SERIES)})")
    done = os.path.join(cache, series, "unpacked")
    if os.path.exists(os.path.join(done, ".complete")):
        return done
    archive, p, deb = newest_deb(series, "binary" if series in SPLIT else "image")
    print(f"fetch: {p['Package']} {p['Version']} from {archive}", file=sys.stderr)
    os.makedirs(os.path.join(cache, series), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.join(cache, series))
    unpack(deb, tmp)
    if series in SPLIT:
        path, mods = modules_deb(series, p["Version"])
        print(f"fetch: {path}", file=sys.stderr)
        unpack(mods, tmp)
    with open(os.path.join(tmp, ".complete"), "w") as f:
        f.write(f"{p['Package']} {p['Version']}\n")
    subprocess.run(["rm", "-rf", done], check=True)
    os.rename(tmp, done)
    return done


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    print(fetch(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "/var/cache/pyrometer-kernels"))
