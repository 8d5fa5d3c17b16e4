#!/usr/bin/env python3
"""Fetch a Debian cloud kernel into a cache outside the tree, once, verified end to end.

    fetch.py SERIES [CACHE]     SERIES: 5.10, 6.1 or 6.12; CACHE: /var/cache/pyrometer-kernels

Prints the directory holding the unpacked package (boot/vmlinuz-*, lib/modules/*). The chain
of trust is Debian's own: InRelease is checked with gpgv against the host's
debian-archive-keyring, Packages.xz against the SHA256 InRelease lists, and the .deb against
the SHA256 Packages lists. A second call finds the unpacked kernel and downloads nothing.
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


def images(series):
    """The linux-image-SERIES.*-cloud-amd64[-unsigned] stanzas of the series' suites, newest
    first (an unsigned image before the signed one of the same version), with their archive."""
    name = re.compile(r"linux-image-" + re.escape(series) + r"\.\d+([-+][\w.+-]*)?-cloud-amd64"
                      r"(-unsigned)?$")
    found = []
    for archive, suite in SERIES[series]:
        try:
            found += [(archive, p) for p in packages(archive, suite) if name.match(p["Package"])]
        except urllib.error.HTTPError as e:
            if e.code != 404:  # 404: a suite without security updates yet
                raise
    key = functools.cmp_to_key(lambda a, b: (-1 if newer(a[1]["Version"], b[1]["Version"]) else
                                             1 if newer(b[1]["Version"], a[1]["Version"]) else
                                             -a[1]["Package"].endswith("-unsigned")))
    return sorted(found, key=key)


def fetch(series, cache):
    if series not in SERIES:
        raise SystemExit(f"fetch: unknown kernel series {series!r} (known: {', '.join(SERIES)})")
    done = os.path.join(cache, series, "unpacked")
    if os.path.exists(os.path.join(done, ".complete")):
        return done
    candidates = images(series)
    if not candidates:
        raise SystemExit(f"fetch: no cloud-amd64 kernel image of {series} in "
                         + ", ".join(s for _, s in SERIES[series]))
    for archive, p in candidates:  # an index can name a file its mirror does not hold yet
        try:
            deb = get(f"{archive}/{p['Filename']}")
            break
        except urllib.error.HTTPError as e:
            print(f"fetch: {p['Package']} {p['Version']}: {e}", file=sys.stderr)
    else:
        raise SystemExit(f"fetch: no kernel image of {series} could be downloaded")
    print(f"fetch: {p['Package']} {p['Version']} from {archive}", file=sys.stderr)
    if sha256(deb) != p["SHA256"]:
        raise SystemExit(f"fetch: {p['Filename']} does not match its Packages hash")
    os.makedirs(os.path.join(cache, series), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.join(cache, series))
    with tempfile.NamedTemporaryFile(suffix=".deb") as f:
        f.write(deb)
        f.flush()
        subprocess.run(["dpkg-deb", "-x", f.name, tmp], check=True)
    with open(os.path.join(tmp, ".complete"), "w") as f:
        f.write(f"{p['Package']} {p['Version']}\n")
    subprocess.run(["rm", "-rf", done], check=True)
    os.rename(tmp, done)
    return done


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    print(fetch(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "/var/cache/pyrometer-kernels"))
