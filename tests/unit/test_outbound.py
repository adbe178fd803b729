"""The HTTP sink and the connection guard (rig.outbound), in a process of
their own as a worker has them: a listener on a real port proves that nothing
left. No broker: the one "service" the process is told of is a listener too."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rig import contract
from rig.target import python_path
from tests.helpers import Listener, listening

SCRIPT = """
import http.client, json, socket, sys
import requests
from rig import outbound
from rig.checkpoints import Execution, set_current

effects = []
outbound.install(lambda kind, effect: effects.append([kind, effect]))
set_current(Execution("t1", 1, "celery@w1"))
outside, rig_port = int(sys.argv[1]), int(sys.argv[2])
answers = {}
url = f"http://127.0.0.1:{outside}/v1/charges?x=1"
response = requests.post(url, json={"amount": 1}, headers={"Idempotency-Key": "k1"})
answers["requests"] = [response.status_code, response.json()]
for name, attempt in (
    ("socket", lambda: socket.create_connection(("127.0.0.1", outside), timeout=2)),
    ("http.client", lambda: http.client.HTTPConnection("127.0.0.1", outside).request("GET", "/")),
):
    try:
        attempt()
        answers[name] = "connected"
    except ConnectionRefusedError as error:
        answers[name] = str(error)
socket.create_connection(("127.0.0.1", rig_port), timeout=2).close()
print(json.dumps({"answers": answers, "effects": effects}))
"""


outside = pytest.fixture(listening, name="outside")
rig_service = pytest.fixture(listening, name="rig_service")


def _run(outside: Listener, rig_service: Listener, sink: dict[str, object]) -> dict[str, object]:
    environment = {
        "PYTHONPATH": python_path(),
        contract.BROKER_URL: f"redis://127.0.0.1:{rig_service.port}/0",
        contract.SINK: json.dumps(sink),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(outside.port), str(rig_service.port)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_sink_answers_and_nothing_leaves(outside: Listener, rig_service: Listener) -> None:
    seen = _run(outside, rig_service, {"status": 201, "body": '{"id": "ch_1"}'})
    answers, effects = seen["answers"], seen["effects"]
    assert answers["requests"] == [201, {"id": "ch_1"}]  # type: ignore[index]
    assert effects[0] == [  # type: ignore[index]
        "calls",
        {
            "method": "POST",
            "host": "127.0.0.1",
            "path": "/v1/charges",
            "key": "k1",
            "replayed": False,
        },
    ]
    where = f"127.0.0.1:{outside.port}"
    for client in ("socket", "http.client"):
        assert where in answers[client], answers  # type: ignore[index]
        assert ["refused", {"address": where}] in effects  # type: ignore[operator]
    assert outside.accepted == [], "a connection left the process"
    assert len(rig_service.accepted) == 1, "the rig's own service was not reachable"
