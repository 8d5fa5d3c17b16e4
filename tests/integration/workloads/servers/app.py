"""The application every server under test runs (as shopXXXX.py, WSGI `app`): /heavy, /light
and /wait run handlers.py's handlers, /garbage makes cyclic garbage."""
import os

import sitecustomize
from flask import Flask
from handlers import handler_heavy, handler_light, handler_wait, timed

app = Flask(__name__)
sitecustomize.app_pid[0] = os.getpid()

for _name, _handler in (("heavy", handler_heavy), ("light", handler_light),
                        ("wait", handler_wait)):
    app.add_url_rule(f"/{_name}", _name, timed(_name, _handler))


class Node:
    def __init__(self):
        self.me = self


@app.route("/garbage")
def garbage():
    keep = [Node() for _ in range(3000)]
    return str(len(keep))
