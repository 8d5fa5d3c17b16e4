"""What the kernel matrix looks for in a kernel's log, shared by matrix.py (the guest's
console, which sees a panic the suite cannot report) and smoke.py (the log buffer)."""
import re

# Lines a kernel writes when something is wrong in it.
KERNEL_TROUBLE = re.compile(r"BUG:|Oops|WARNING:|Kernel panic|general protection fault|"
                            r"Unable to handle|UBSAN:|KASAN:|refcount_t:|list_(add|del) corruption")
