"""Long GC pauses on demand: holds about a million tracked objects, then on "go" runs full
collections (each tens of ms) for SECONDS, prints "done", and waits, alive and idle, until
stdin closes."""
import gc, sys, time

keep = [[i] for i in range(1_000_000)]
print("ready", flush=True)
sys.stdin.readline()
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    gc.collect()
print("done", flush=True)
sys.stdin.readline()
