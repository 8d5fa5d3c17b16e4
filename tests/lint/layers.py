"""The agent's layout rules (README, "Layout"), checked by `make lint`:
- every module lives in a folder; only main.c sits in agent/ itself;
- folders form layers: a folder includes only folders below it (RANK), so there is no
  include loop between folders, and nothing below daemon/ and cli/ includes them;
- no source file is over MAX_LINES lines;
- a function other files can call is named after its file (spool.c: spool_put) or after the
  header of its folder that declares it (gctrace_retire.c: gctrace_retire, in gctrace.h);
  objects take module_new/module_free. Command entry points are cmd_NAME."""
import glob
import os
import re
import sys

# Lower first. A folder may include its own files and folders of a lower rank.
RANK = {"base": 0, "python": 1, "procs": 2, "profile": 2, "usdt": 3, "cpu": 3, "calls": 3,
        "delivery": 3, "gc": 4, "imports": 4, "daemon": 5, "cli": 5}
MAX_LINES = 600


def main(root):
    agent = os.path.join(root, "agent")
    errors = []
    for f in os.listdir(agent):
        if os.path.isfile(os.path.join(agent, f)) and f != "main.c":
            errors.append(f"agent/{f}: only main.c lives outside a folder")
    for d in sorted(os.listdir(agent)):
        if os.path.isdir(os.path.join(agent, d)) and d not in RANK:
            errors.append(f"agent/{d}/: a folder the layer table does not know")
    for path in sorted(glob.glob(os.path.join(agent, "*", "*.[ch]"))):
        rel = os.path.relpath(path, root)
        folder = rel.split("/")[1]
        text = open(path).read()
        if text.count("\n") > MAX_LINES:
            errors.append(f"{rel}: {text.count(chr(10))} lines (at most {MAX_LINES})")
        for n, line in enumerate(text.splitlines(), 1):
            m = re.match(r'#include "([a-z_]+)/[^"]+"', line)
            if not m or m.group(1) == folder:
                continue
            to = m.group(1)
            if to not in RANK or RANK.get(folder, -1) <= RANK[to]:
                errors.append(f"{rel}:{n}: {folder}/ includes {to}/, which is not below it")
    errors += naming(agent)
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


def naming(agent):
    """Non-static functions defined at the top level of each agent/FOLDER/FILE.c."""
    errors = []
    for path in sorted(glob.glob(os.path.join(agent, "*", "*.c"))):
        folder = os.path.dirname(path)
        stem = os.path.basename(path)[:-2]
        headers = {os.path.basename(h)[:-2]: open(h).read()
                   for h in glob.glob(os.path.join(folder, "*.h"))}
        for n, line in enumerate(open(path).read().splitlines(), 1):
            if not re.match(r"[a-z]", line) or line.startswith(("static ", "typedef ")):
                continue
            m = re.match(r"[\w \*]*?\b([a-z_][a-z_0-9]*)\(", line)
            if not m or m.group(1) in ("main",) or m.group(1).startswith("cmd_"):
                continue
            name = m.group(1)
            if name.startswith(stem + "_"):
                continue
            if any(name.startswith(h + "_") and re.search(rf"\b{name}\(", text)
                   for h, text in headers.items()):
                continue
            errors.append(f"{os.path.relpath(path, os.path.dirname(agent))}:{n}: {name} is "
                          f"named neither after its file nor after a header declaring it")
    return errors


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
