"""What matrix.py and smoke.py share without the zoo: what to look for in a kernel's log
(the guest's console, which sees a panic the suite cannot report, and the log buffer), and
a reference task that tells how much slower a guest runs than its host."""
import re
import subprocess
import sys
import time

# Lines a kernel writes when something is wrong in it.
KERNEL_TROUBLE = re.compile(r"BUG:|Oops|WARNING:|Kernel panic|general protection fault|"
                            r"Unable to handle|UBSAN:|KASAN:|refcount_t:|list_(add|del) corruption")


def reference_seconds():
    """A fixed CPU-bound task (median of 3 runs): how fast this machine runs code."""
    runs = []
    for _ in range(3):
        t = time.monotonic()
        subprocess.run([sys.executable, "-S", "-c", "sum(i * i for i in range(3_000_000))"],
                       check=True)
        runs.append(time.monotonic() - t)
    return sorted(runs)[1]
