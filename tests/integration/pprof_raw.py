"""Reads a pprof file through `go tool pprof -raw`, an independent consumer: if go's parser
rejects the profile, the test fails."""
import re
import subprocess


class RawProfile:
    def __init__(self, path):
        r = subprocess.run(["go", "tool", "pprof", "-raw", path], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"go tool pprof rejected {path}: {r.stderr}")
        self.text = r.stdout
        self.samples = []     # (count, [function names leaf first], {label: value})
        self.second = []      # each sample's second value (cpu or wall nanoseconds)
        self.locations = {}   # id -> (function, file, line)
        self.period = None
        self.time_unix = None
        self._parse()

    def _parse(self):
        section = None
        for line in self.text.splitlines():
            if line.startswith("Period:"):
                self.period = int(line.split()[1])
            if line.startswith("Time:"):  # "Time: 2026-11-22 05:40:01.123 +0000 UTC"
                import datetime
                stamp = " ".join(line.split()[1:3])
                self.time_unix = datetime.datetime.fromisoformat(stamp[:26]).replace(
                    tzinfo=datetime.timezone.utc).timestamp()
            if line in ("Samples:", "Locations", "Mappings"):
                section = line
                continue
            if section == "Samples:":
                m = re.match(r"\s+(\d+)\s+(\d+): ([\d ]+)$", line)
                if m:
                    self.samples.append([int(m.group(1)), [int(x) for x in m.group(3).split()], {}])
                    self.second.append(int(m.group(2)))
                    continue
                for k, v in re.findall(r"(\w+):\[([^\]]*)\]", line):
                    if self.samples:
                        self.samples[-1][2][k] = v
            elif section == "Locations":
                # "     4: 0x0 M=1 leaf_a /tmp/burn.py:4 s=2" (name may be empty, see below). A
                # Python name holds no space, a pseudo-frame is "[...]"; the file may hold spaces
                # ("<frozen codecs>"), so the name is what is split off first
                m = re.match(r"\s+(\d+): 0x[0-9a-f]+ M=\d+ (\[[^\]]*\]|\S*) (.*):(\d+) s=(\d+)"
                             r"(?:\((.*)\))?$", line)
                if m:
                    name = m.group(2).strip() or (m.group(6) or "")
                    self.locations[int(m.group(1))] = (name, m.group(3), int(m.group(4)))
        self.samples = [(c, [self.locations[i][0] for i in locs], labels)
                        for c, locs, labels in self.samples]

    def total(self):
        return sum(c for c, _, _ in self.samples)



def pprof_top(path):
    """The first function `go tool pprof -top` lists (most flat samples)."""
    r = subprocess.run(["go", "tool", "pprof", "-top", path], capture_output=True, text=True,
                       timeout=120, check=True)
    lines = r.stdout.splitlines()
    header = next(i for i, l in enumerate(lines) if l.split()[:2] == ["flat", "flat%"])
    return lines[header + 1].split(None, 5)[5]
