"""Three threads, each burning CPU in its own function; prints {native thread id: function}
first, then runs for SECONDS. Args: SECONDS [hold]: with "hold", the threads start burning
only after a line on stdin."""
import json, sys, threading, time

def burn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(i * i for i in range(200))

def work_red(s): burn(s)
def work_green(s): burn(s)
def work_blue(s): burn(s)

seconds = float(sys.argv[1])
ids = {}
started = threading.Barrier(4)
go = threading.Event()
def run(fn):
    ids[threading.get_native_id()] = fn.__name__
    started.wait()
    go.wait()
    fn(seconds)
threads = [threading.Thread(target=run, args=(f,), name=f.__name__)
           for f in (work_red, work_green, work_blue)]
for t in threads:
    t.start()
started.wait()
print("ready", flush=True)
print(json.dumps(ids), flush=True)
if sys.argv[2:] == ["hold"]:
    sys.stdin.readline()
go.set()
for t in threads:
    t.join()
