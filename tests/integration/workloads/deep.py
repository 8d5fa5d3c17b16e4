"""Recurses 500 deep, then burns CPU in deep_leaf. Args: SECONDS."""
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
down(500, float(sys.argv[1]))
print("{}", flush=True)
