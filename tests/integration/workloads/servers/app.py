"""The application every server under test runs (as shopXXXX.py, WSGI `app`): /heavy and
/light burn CPU in handler_heavy and handler_light, /wait sleeps 5 ms, /garbage makes cyclic
garbage. Each handler's thread CPU and wall time is kept for sitecustomize.py to report."""
import os
import time

import sitecustomize
from flask import Flask

app = Flask(__name__)
sitecustomize.app_pid[0] = os.getpid()


def account(name, cpu0, wall0):
    cpu, wall = sitecustomize.handlers.get(name, (0.0, 0.0))
    sitecustomize.handlers[name] = (cpu + time.thread_time() - cpu0,
                                    wall + time.monotonic() - wall0)


def burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def handler_heavy():
    return burn(40000)


def handler_light():
    return burn(10000)


class Node:
    def __init__(self):
        self.me = self


@app.route("/heavy")
def heavy():
    c, w = time.thread_time(), time.monotonic()
    r = handler_heavy()
    account("heavy", c, w)
    return str(r)


@app.route("/light")
def light():
    c, w = time.thread_time(), time.monotonic()
    r = handler_light()
    account("light", c, w)
    return str(r)


@app.route("/wait")
def handler_wait():
    c, w = time.thread_time(), time.monotonic()
    time.sleep(0.005)
    account("wait", c, w)
    return "ok"


@app.route("/garbage")
def garbage():
    keep = [Node() for _ in range(3000)]
    return str(len(keep))
