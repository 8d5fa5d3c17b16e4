"""The Celery application under test (as tasksXXXX.py), with Debian's redis-server on
loopback as its broker (CELERY_BROKER): its tasks run handlers.py's handlers. Run as a script
it is the load generator."""
import os
import time

import sitecustomize
from celery import Celery
from handlers import handler_heavy, handler_light, handler_wait, timed

app = Celery(__name__, broker=os.environ["CELERY_BROKER"])
app.conf.task_ignore_result = True
app.conf.worker_prefetch_multiplier = 4
sitecustomize.app_pid[0] = os.getpid()


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
