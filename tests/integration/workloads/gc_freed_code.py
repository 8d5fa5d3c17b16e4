"""Collects inside a function for SECONDS, then frees that function's code object and
fills its memory with bytes objects, all within one of pyrometer's reads of GC events:
the last pauses' stacks are symbolized after their code object is gone. Prints "ready",
waits for a line on stdin, runs, prints "done" and waits for stdin to close."""
import gc, sys, time


class Node:
    def __init__(self, other=None):
        self.other = other or self


src = "def churn(end):\n    while time.monotonic() < end:\n        keep = [Node(Node()) for _ in range(3000)]\n"
ns = {"Node": Node, "time": time}
exec(compile(src, "<generated>", "exec"), ns)
print("ready", flush=True)
sys.stdin.readline()
ns["churn"](time.monotonic() + float(sys.argv[1]))
size = sys.getsizeof(ns["churn"].__code__)
del ns  # the function and its globals hold each other:
gc.collect()  # the code objects are freed now
fill = [bytes(size - 33) for _ in range(200000)]  # same size class, reuses the block
print("done", flush=True)
sys.stdin.readline()
