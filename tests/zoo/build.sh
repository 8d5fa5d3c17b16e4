#!/usr/bin/env bash
# Builds the CPython version zoo every test uses, idempotently, outside the source tree.
#
#   tests/zoo/build.sh [ZOO_DIR]     (default: $PYROMETER_ZOO or /var/cache/pyrometer-zoo)
#
# Each part is built into a temporary name and renamed into place only when it works, with a
# stamp recording what it was built from; a part whose stamp matches is reused as it is.
# At the end ZOO_DIR/zoo.json lists every interpreter: how to start it and what it should be.
set -euo pipefail

ZOO=${1:-${PYROMETER_ZOO:-/var/cache/pyrometer-zoo}}
MIRROR=${PYROMETER_MIRROR:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$ZOO"

log() { printf 'zoo: %s\n' "$*" >&2; }

# Packages per chroot. The -dbg packages carry the DWARF that tests compare offset tables with.
BULLSEYE_PKGS=python3.9,python3.9-dbg
SID_PKGS=python3.13,python3.14,python3.15,python3.13-dbg,python3.14-dbg,python3.15-dbg

stamp_ok() { [ -f "$1/.zoo-stamp" ] && [ "$(cat "$1/.zoo-stamp")" = "$2" ]; }

# debootstrap SUITE PKGS DIR: a minbase chroot with the given packages, reused when its stamp
# matches. /proc is bind-mounted by the tests that need it, not here.
make_chroot() {
	local suite=$1 pkgs=$2 dir=$3 stamp="debootstrap minbase $1 $2 v1"
	if stamp_ok "$dir" "$stamp"; then log "$dir is up to date"; return; fi
	log "debootstrap $suite into $dir (packages: $pkgs)"
	rm -rf "$dir.tmp" "$dir"
	debootstrap --variant=minbase --include="$pkgs" "$suite" "$dir.tmp" "$MIRROR" >"$ZOO/$suite.log" 2>&1 ||
		{ log "debootstrap $suite failed; see $ZOO/$suite.log"; tail -5 "$ZOO/$suite.log" >&2; exit 1; }
	echo "$stamp" >"$dir.tmp/.zoo-stamp"
	mv "$dir.tmp" "$dir"
}

# The embedded interpreter: a small C host program whose Python and whose probes live in
# libpython3.11.so, not in the executable.
make_embedded() {
	local dir=$ZOO/embed311 src=$HERE/embed.c
	local stamp; stamp="embed $(sha256sum "$src" | cut -c1-16) $(/usr/bin/python3.11-config --embed --libs)"
	if stamp_ok "$dir" "$stamp"; then log "$dir is up to date"; return; fi
	rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
	# shellcheck disable=SC2046
	cc -O2 -Wall -Werror -o "$dir.tmp/pyembed" "$src" \
		$(/usr/bin/python3.11-config --includes) $(/usr/bin/python3.11-config --embed --ldflags)
	# The host's PATH may put another Python's libpython first (pyenv): insist on Debian's.
	if ! ldd "$dir.tmp/pyembed" | grep -q ' => /\(usr/\)\?lib/x86_64-linux-gnu/libpython3.11.so'; then
		log "pyembed does not load Debian's libpython3.11.so:"; ldd "$dir.tmp/pyembed" >&2; exit 1
	fi
	echo "$stamp" >"$dir.tmp/.zoo-stamp"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# The interpreter that arrives by dlopen: a host that links nothing of Python and dlopens
# Debian's libpython3.11.so after PYDLOPEN_DELAY_MS, long after exec.
make_dlopen() {
	local dir=$ZOO/dlopen311 src=$HERE/dlopen.c
	local stamp; stamp="dlopen $(sha256sum "$src" | cut -c1-16)"
	if stamp_ok "$dir" "$stamp"; then log "$dir is up to date"; return; fi
	rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
	cc -O2 -Wall -Werror -o "$dir.tmp/pydlopen" "$src" -ldl
	if readelf -d "$dir.tmp/pydlopen" | grep -q 'NEEDED.*libpython'; then
		log "pydlopen links libpython: it must arrive by dlopen"; exit 1
	fi
	echo "$stamp" >"$dir.tmp/.zoo-stamp"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# The build without USDT: the host's python3.11 with .note.stapsdt removed. It finds its
# standard library through the compiled-in prefix (/usr), like the original.
make_nousdt() {
	local dir=$ZOO/nousdt311 stamp
	stamp="nousdt $(sha256sum /usr/bin/python3.11 | cut -c1-16)"
	if stamp_ok "$dir" "$stamp"; then log "$dir is up to date"; return; fi
	rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
	objcopy --remove-section .note.stapsdt /usr/bin/python3.11 "$dir.tmp/python3.11"
	if readelf -n "$dir.tmp/python3.11" | grep -q stapsdt; then
		log "objcopy left .note.stapsdt in place"; exit 1
	fi
	echo "$stamp" >"$dir.tmp/.zoo-stamp"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# Upstream CPython sources, for the versions no Debian release carries (3.10 and 3.12, the
# defaults of Ubuntu 22.04 and 24.04). Registries here serve no sources: the project's
# machines keep them beside the checkout (../shared/cpython, see its README). The checksums
# are those of that README.
CPYTHON_SRC=${PYROMETER_CPYTHON_SRC:-$(cd "$HERE/../../.." && pwd)/shared/cpython}
declare -A CPYTHON_SHA256=(
	[cpython-3.10.tar.xz]=f93638029201d81fcc2ae30e741d52d519dab1bdf017b992451e85311c3780fa
	[cpython-3.12.tar.xz]=c2b92083c5ba022c567f7241b36ba302976ffe23f5ee84ba617f67f951ed9bc7
	[cpython-3.14.tar.xz]=0b521a50f83426b1ce5ef82b9f9b5cccc942b3b3c0f01d56ec26e8a2fd797f54
)

# make_source NAME TARBALL CONFIGURE-ARGS...: CPython built from TARBALL and installed as
# ZOO/NAME (its own prefix, so it finds its standard library there), with the debug info
# of CPython's default flags (-g), which test_layout reads the frame layout from.
make_source() {
	local name=$1 file=$2 dir=$ZOO/$1 sum stamp
	shift 2
	local tarball=$CPYTHON_SRC/$file
	# built before from a tarball whose sum was checked: the sources are not needed again
	stamp="source $name ${CPYTHON_SHA256[$file]} $* v1"
	if stamp_ok "$dir" "$stamp"; then log "$dir is up to date"; return; fi
	if [ ! -f "$tarball" ]; then
		log "$tarball is missing: the upstream CPython sources the zoo builds $name from"
		log "(set PYROMETER_CPYTHON_SRC to the directory that holds $file)"
		exit 1
	fi
	sum=$(sha256sum "$tarball" | cut -c1-64)
	if [ "$sum" != "${CPYTHON_SHA256[$file]}" ]; then
		log "$tarball has sha256 $sum, not ${CPYTHON_SHA256[$file]}"; exit 1
	fi
	log "building $name from $file ($*): a few minutes; log in $ZOO/$name.log"
	rm -rf "$dir.build" "$dir.stage" && mkdir -p "$dir.build"
	tar -xJf "$tarball" -C "$dir.build" --strip-components=1
	if ! (cd "$dir.build" && ./configure --prefix="$dir" --without-ensurepip "$@" &&
		make -j"$(nproc)" && make install DESTDIR="$dir.stage") >"$ZOO/$name.log" 2>&1; then
		log "building $name failed; see $ZOO/$name.log"; tail -5 "$ZOO/$name.log" >&2; exit 1
	fi
	echo "$stamp" >"$dir.stage$dir/.zoo-stamp"
	rm -rf "$dir" && mv "$dir.stage$dir" "$dir" && rm -rf "$dir.stage" "$dir.build"
}

make_chroot bullseye "$BULLSEYE_PKGS" "$ZOO/bullseye"
make_chroot sid "$SID_PKGS" "$ZOO/sid"
make_embedded
make_dlopen
make_nousdt
make_source py310 cpython-3.10.tar.xz --with-dtrace
make_source py312 cpython-3.12.tar.xz --with-dtrace
# free-threaded (no GIL), named as CPython names it: python3.14t
make_source py314t cpython-3.14.tar.xz --with-dtrace --disable-gil

# zoo.json: one entry per interpreter. "argv" starts a script given after it; "root" is the
# directory the process sees as /; "version" is what the interpreter itself says it is.
VERSION_PY='import sys, sysconfig; print("%d.%d.%d" % sys.version_info[:3] + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""))'
entry() { # name root argv-json interpreter-command...
	local name=$1 root=$2 argv=$3 ver
	shift 3
	mkdir -p "$root/tmp"
	echo "$VERSION_PY" >"$root/tmp/zoo-version.py"
	if [ "$root" = / ]; then ver=$("$@" /tmp/zoo-version.py)
	else ver=$(chroot "$root" "$@" /tmp/zoo-version.py); fi
	printf '  {"name": "%s", "root": "%s", "argv": %s, "version": "%s"}' "$name" "$root" "$argv" "$ver"
}
{
	echo "["
	entry py39 "$ZOO/bullseye" '["/usr/bin/python3.9"]' /usr/bin/python3.9; echo ","
	entry py311 / '["/usr/bin/python3.11"]' /usr/bin/python3.11; echo ","
	entry py311-embedded / "[\"$ZOO/embed311/pyembed\"]" "$ZOO/embed311/pyembed"; echo ","
	# (PYDLOPEN_DELAY_MS=0: the version check need not wait)
	PYDLOPEN_DELAY_MS=0 entry py311-dlopen / "[\"$ZOO/dlopen311/pydlopen\", \"libpython3.11.so.1.0\"]" \
		"$ZOO/dlopen311/pydlopen" libpython3.11.so.1.0; echo ","
	entry py311-nousdt / "[\"$ZOO/nousdt311/python3.11\"]" "$ZOO/nousdt311/python3.11"; echo ","
	entry py310 / "[\"$ZOO/py310/bin/python3.10\"]" "$ZOO/py310/bin/python3.10"; echo ","
	entry py312 / "[\"$ZOO/py312/bin/python3.12\"]" "$ZOO/py312/bin/python3.12"; echo ","
	entry py313 "$ZOO/sid" '["/usr/bin/python3.13"]' /usr/bin/python3.13; echo ","
	entry py314 "$ZOO/sid" '["/usr/bin/python3.14"]' /usr/bin/python3.14; echo ","
	entry py314t / "[\"$ZOO/py314t/bin/python3.14t\"]" "$ZOO/py314t/bin/python3.14t"; echo ","
	entry py315 "$ZOO/sid" '["/usr/bin/python3.15"]' /usr/bin/python3.15; echo
	echo "]"
} >"$ZOO/zoo.json.tmp"
mv "$ZOO/zoo.json.tmp" "$ZOO/zoo.json"
log "ready: $ZOO/zoo.json"
