"""Recurses DEPTH calls of down() deep, then burns CPU in deep_leaf. Args: SECONDS DEPTH
[hold]: with "hold", waits for a line on stdin after "ready"."""
import sys, time

def deep_leaf(seconds):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1

def down(n, seconds):
    if n == 0:
        return deep_leaf(seconds)
    return down(n - 1, seconds)

sys.setrecursionlimit(int(sys.argv[2]) + 100)
print("ready", flush=True)
if sys.argv[3:] == ["hold"]:
    sys.stdin.readline()
down(int(sys.argv[2]), float(sys.argv[1]))
print("{}", flush=True)
