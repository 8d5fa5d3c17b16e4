"""The request handlers every server under test runs, as Flask views (app.py) or Celery tasks
(tasks.py): handler_heavy and handler_light burn CPU, handler_wait sleeps 5 ms. timed() keeps
each one's thread CPU and wall time for sitecustomize.py to report."""
import time

import sitecustomize


def timed(name, fn):
    def run():
        c, w = time.thread_time(), time.monotonic()
        r = fn()
        cpu, wall = sitecustomize.handlers.get(name, (0.0, 0.0))
        sitecustomize.handlers[name] = (cpu + time.thread_time() - c, wall + time.monotonic() - w)
        return r
    return run


def burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return str(x)


def handler_heavy():
    return burn(40000)


def handler_light():
    return burn(10000)


def handler_wait():
    time.sleep(0.005)
    return "ok"
