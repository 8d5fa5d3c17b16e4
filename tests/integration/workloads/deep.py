"""Recurses 500 deep, then burns CPU in deep_leaf. Args: SECONDS [hold]: with "hold", waits
for a line on stdin after "ready"."""
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

print("ready", flush=True)
if sys.argv[2:] == ["hold"]:
    sys.stdin.readline()
down(500, float(sys.argv[1]))
print("{}", flush=True)
