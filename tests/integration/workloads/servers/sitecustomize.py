"""Loaded by every Python process of a server under test (PYTHONPATH): every 0.2 s it writes
what the process knows of itself to $SRV_STATS/PID.json, for test_servers.py to compare with
what pyrometer reports:
  collections: gc.get_stats()'s per generation; inherited: the same at fork (a forked worker
  starts with its parent's counts); handlers: {name: [thread CPU s, wall s]} of the requests
  this process served; app_pid: the process that imported the application."""
import gc
import json
import os
import sys
import threading
import time

STATS = os.environ.get("SRV_STATS")
inherited = [0, 0, 0]
handlers = {}
app_pid = [0]


def dump():
    d = {"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv[:3],
         "inherited": list(inherited), "app_pid": app_pid[0],
         "collections": [s["collections"] for s in gc.get_stats()],
         "handlers": dict(handlers)}
    tmp = f"{STATS}/.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(d, f)
    os.replace(tmp, f"{STATS}/{os.getpid()}.json")


def loop():
    while True:
        dump()
        time.sleep(0.2)


def start():
    threading.Thread(target=loop, daemon=True, name="srv-stats").start()


def after_fork():
    inherited[:] = [s["collections"] for s in gc.get_stats()]
    handlers.clear()
    start()


if STATS:
    os.register_at_fork(after_in_child=after_fork)
    start()
