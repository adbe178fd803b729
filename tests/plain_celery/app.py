"""A Celery app with no Django at all: the rig still runs it, with task_start
and task_end as its only automatic checkpoints."""

from celery import Celery

from rig import checkpoint

# An app may print as it loads; the rig's probe reads only its own marked line.
print("plain: loading the app")
app = Celery("plain")
# Its periodic job, every second, which the rig's beat workload runs as it is.
app.conf.beat_schedule = {"plain-tick": {"task": "plain.add", "schedule": 1.0, "args": (1, 2)}}


@app.task(name="plain.halves")
def halves(x: int) -> int:
    """Names a point of its own where the rig can land a fault (--at halfway)."""
    checkpoint("halfway")
    return x // 2


@app.task(name="plain.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="plain.dump")
def dump(value: int) -> str:
    # A package beyond the rig's image (tests/plain_celery/requirements.txt),
    # imported where it is used, as the host that checks the app may lack it.
    import tomli_w

    return tomli_w.dumps({"value": value})


@app.task(name="plain.post")
def post(url: str) -> int:
    """Calls an HTTP API (requests, in the rig's image): the rig's sink answers."""
    import requests

    return requests.post(url, json={"amount": 1}, timeout=5).status_code


@app.task(name="plain.post_httpx")
def post_httpx(url: str) -> int:
    """Calls an HTTP API with httpx (tests/plain_celery/requirements.txt): the sink answers."""
    import httpx

    return httpx.post(url, json={"amount": 1}, timeout=5).status_code


@app.task(name="plain.connect")
def connect(port: int) -> None:
    """Opens a raw connection, as a client the sink does not answer would."""
    import socket

    socket.create_connection(("127.0.0.1", port), timeout=5).close()
