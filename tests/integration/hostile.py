"""Hostile interpreter binaries, as a container image could carry them: a real CPython whose
.note.stapsdt section repeats one probe thousands of times (the same site, or distinct
addresses). Made with objcopy, since .note.stapsdt is not loaded: the interpreter runs as
before, only the notes lie."""
import shutil
import struct
import subprocess


def _notes(data):
    """(offset, length, name) of each stapsdt note of a .note.stapsdt section."""
    out, off = [], 0
    while off + 12 <= len(data):
        namesz, descsz, _ = struct.unpack_from("<III", data, off)
        desc = off + 12 + ((namesz + 3) & ~3)
        end = desc + ((descsz + 3) & ~3)
        strings = data[desc + 24:desc + descsz].split(b"\0")
        out.append((off, end - off, strings[1].decode() if len(strings) > 1 else ""))
        off = end
    return out


def _pc_at(data, off):
    """Where the pc (the site's address) lies in the note that starts at data[off]."""
    namesz = struct.unpack_from("<I", data, off)[0]
    return off + 12 + ((namesz + 3) & ~3)


def repeat_probe(src, dst, probe="gc__start", copies=5000, distinct=False):
    """Copies interpreter src to dst with `copies` extra notes of `probe`: the same site each
    time, or (distinct) addresses one byte apart."""
    def change(data):
        note = next((data[o:o + n] for o, n, name in _notes(data) if name == probe), None)
        assert note, f"{src} has no {probe} note"
        pc_at = _pc_at(note, 0)
        extra = bytearray()
        for i in range(copies):
            n = bytearray(note)
            if distinct:
                pc = struct.unpack_from("<Q", n, pc_at)[0]
                struct.pack_into("<Q", n, pc_at, pc + 1 + i)
            extra += n
        return data + bytes(extra)
    return _rewrite_notes(src, dst, change)


def _rewrite_notes(src, dst, change):
    """Copies src to dst with its .note.stapsdt section replaced by change(section bytes)."""
    shutil.copy(src, dst)
    sec = dst + ".notes"
    subprocess.run(["objcopy", f"--dump-section=.note.stapsdt={sec}", src, dst + ".tmp"],
                   check=True)
    data = open(sec, "rb").read()
    open(sec, "wb").write(change(data))
    subprocess.run(["objcopy", "--update-section", f".note.stapsdt={sec}", dst + ".tmp", dst],
                   check=True)
    return dst


def drop_probes(src, dst, probes):
    """Copies interpreter src to dst without the notes of the named probes."""
    def change(data):
        kept = [data[o:o + n] for o, n, name in _notes(data) if name not in probes]
        assert len(kept) < len(_notes(data)), f"{src} has none of {probes}"
        return b"".join(kept)
    return _rewrite_notes(src, dst, change)


def _text(path):
    """(file offset, virtual address, size) of the .text section."""
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 5 and f[1] == ".text":
            return int(f[4], 16), int(f[3], 16), int(f[5], 16)
    raise AssertionError(f"{path} has no .text")


def point_probe_at(src, dst, probe, byte):
    """Copies interpreter src to dst with every note of `probe` pointing at the first
    byte `byte` of its code (inside an instruction, where the kernel's decoder refuses a
    uprobe). The interpreter runs as before: it never reads its notes."""
    off, addr, size = _text(src)
    with open(src, "rb") as f:
        f.seek(off)
        at = f.read(size).find(bytes([byte]))
    assert at >= 0, f"no byte {byte:#x} in {src}'s .text"

    def change(data):
        out = bytearray(data)
        hits = 0
        for o, _, name in _notes(data):
            if name == probe:
                struct.pack_into("<Q", out, _pc_at(data, o), addr + at)
                hits += 1
        assert hits, f"{src} has no {probe} note"
        return bytes(out)
    return _rewrite_notes(src, dst, change)
