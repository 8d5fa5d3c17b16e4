"""The Celery application under test (as tasksXXXX.py), with Debian's redis-server on
loopback as its broker (CELERY_BROKER): heavy_task and light_task burn CPU, wait_task sleeps
5 ms. Each task's thread CPU and wall time is kept for sitecustomize.py to report. Run as a
script it is the load generator."""
import os
import time

import sitecustomize
from celery import Celery

app = Celery(__name__, broker=os.environ["CELERY_BROKER"])
app.conf.task_ignore_result = True
app.conf.worker_prefetch_multiplier = 4
sitecustomize.app_pid[0] = os.getpid()


def timed(name, fn):
    def run():
        c, w = time.thread_time(), time.monotonic()
        fn()
        cpu, wall = sitecustomize.handlers.get(name, (0.0, 0.0))
        sitecustomize.handlers[name] = (cpu + time.thread_time() - c, wall + time.monotonic() - w)
    return run


def burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def handler_heavy():
    burn(40000)


def handler_light():
    burn(10000)


def handler_wait():
    time.sleep(0.005)


heavy_task = app.task(name="heavy")(timed("heavy", handler_heavy))
light_task = app.task(name="light")(timed("light", handler_light))
wait_task = app.task(name="wait")(timed("wait", handler_wait))


if __name__ == "__main__":  # the load generator: RATE tasks a second for SECONDS
    import sys
    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    mix = [heavy_task, light_task, light_task, wait_task, heavy_task, light_task, wait_task]
    start, n = time.monotonic(), 0
    while time.monotonic() < start + seconds:
        mix[n % len(mix)].delay()
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    print(n, flush=True)
