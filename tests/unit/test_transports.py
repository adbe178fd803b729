"""The transport axis without a broker: settings, scenario files' per-transport
tables, the RabbitMQ node's config, and the side-by-side report table."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from rig import fairness
from rig.catalog import on_transports, skip_reason, skipped_row
from rig.cli import build_parser
from rig.errors import BadInput, BrokerDown
from rig.report import transport_table
from rig.scenarios import find, load_catalog, parse_scenario
from rig.settings import make_settings
from rig.transports import TRANSPORTS, rabbitmq
from rig.transports.rabbitmq import node
from tests.helpers import ROOT


def _scenario(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        '[settings]\nacks = "late"\nfault = "pause"\nat = "after_commit"\n'
        "[expect]\nexecutions = 2\nduplicate_rows = 1\n" + extra
    )
    return path


def test_each_transport_gives_the_workers_its_own_settings() -> None:
    redis_conf = make_settings(transport="redis").celery_settings()
    assert redis_conf["broker_transport_options"]["visibility_timeout"] == 2.0
    quorum = make_settings(transport="rabbitmq", queue_type="quorum", heartbeat=5)
    conf = quorum.celery_settings()
    assert conf["task_default_queue_type"] == "quorum" and conf["broker_heartbeat"] == 5
    assert "broker_transport_options" not in conf  # no visibility timeout on RabbitMQ


def test_the_controller_declares_the_queue_and_exchange_as_the_workers_do() -> None:
    """RabbitMQ refuses a queue or an exchange declared a second way."""
    from rig.events import controller_app
    from rig.transports import TRANSPORTS

    settings = make_settings(transport="rabbitmq", queue_type="quorum", exchange_type="topic")
    declared = TRANSPORTS["rabbitmq"].crew_setup(settings)["declared"]
    app = controller_app("amqp://127.0.0.1:1//", declared=declared)
    conf = settings.celery_settings()
    for name in ("task_default_queue_type", "task_default_exchange_type"):
        assert app.conf[name] == conf[name]
    assert (conf["task_default_queue_type"], conf["task_default_exchange_type"]) == (
        "quorum",
        "topic",
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"queue_type": "quorum"}, "transport=redis: queue_type: RabbitMQ's"),
        ({"consumer_timeout": 2}, "transport=redis: consumer_timeout: RabbitMQ's"),
        ({"exchange_type": "topic"}, "transport=redis: exchange_type: RabbitMQ's"),
        ({"transport": "rabbitmq", "delivery_limit": 2}, "delivery_limit needs queue_type=quorum"),
        ({"transport": "kafka"}, "transport='kafka'"),
        ({"fault_times": 3}, "fault_times needs a fault"),
    ],
)
def test_settings_a_transport_cannot_honour_are_errors(values: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        make_settings(**values)


def test_a_crew_gets_its_own_corner_of_each_broker() -> None:
    assert TRANSPORTS["redis"].crew_url("redis://127.0.0.1:6379/0", 3) == "redis://127.0.0.1:6379/3"
    url = rabbitmq.crew_url("amqp://guest:guest@127.0.0.1:5672/rig0", 3)
    assert url == "amqp://guest:guest@127.0.0.1:5672/rig3"
    assert {v["name"] for v in node.definitions()["vhosts"]} == {
        f"rig{slot}" for slot in range(node.SLOTS)
    }


def test_the_node_stores_the_users_password_as_rabbitmq_hashes_it() -> None:
    (user,) = node.definitions()["users"]
    raw = base64.b64decode(user["password_hash"])
    salt, digest = raw[:4], raw[4:]
    assert digest == hashlib.sha256(salt + node.USER.encode()).digest()
    config = node.node_config("127.0.0.1:5999", "/x/definitions.json")
    assert "listeners.tcp.default = 127.0.0.1:5999" in config
    assert "load_definitions = /x/definitions.json" in config


def test_the_nodes_reply_is_the_evaluated_term_or_one_line_why_not() -> None:
    assert node.reply(0, "{ok, 3}\n") == "3"
    assert node.reply(0, '{ok, {error_string, "Parameter does not exist"}}') == (
        '{error_string, "Parameter does not exist"}'
    )
    with pytest.raises(BrokerDown, match=r"^erl_call: \{error, \"\*\*\* eval: badarith\"\}$"):
        node.reply(0, '{error, "*** eval:\n   badarith"}')
    with pytest.raises(BrokerDown, match="failed to connect to node rabbit@rabbitmq$"):
        node.reply(1, "erl_call: failed to connect to node rabbit@rabbitmq\n")
    with pytest.raises(BrokerDown, match="exit code 1$"):
        node.reply(1, "")


def test_each_call_to_the_node_names_its_client_afresh() -> None:
    # erl_call's own client name (and -r) let 1 of 12 calls at once connect.
    first, second = node.erl_call_args("rabbit"), node.erl_call_args("rabbit")
    assert first[0] == second[0] == "-h" and first[1] != second[1]
    assert first[-3:] == ["-sname", "rabbit", "-e"]


def _restart(persist: bool, answers: dict[str, str], down: Callable[[], None]) -> list[str]:
    """node.restart_broker with a node that answers each expression from `answers`
    (or `ok`, or BrokerDown for "down"); the expressions it was asked, in order."""
    asked: list[str] = []

    def evaluate(expression: str, timeout_s: float) -> str:
        asked.append(expression)
        answer = answers.get(expression, "ok")
        if answer == "down":
            raise BrokerDown("erl_call: failed to connect to node rabbit@rabbitmq")
        return answer

    def while_down() -> None:
        asked.append("(down)")
        down()

    asked.append(str(node.restart_broker(evaluate, persist, while_down)))
    return asked


def test_a_restart_stops_wipes_without_persistence_and_starts_the_broker() -> None:
    with_data = _restart(True, {}, lambda: None)
    assert with_data == ["rabbit:stop().", "(down)", "rabbit:start().", "True"]
    without = _restart(False, {}, lambda: None)
    wiped = ["rabbit:stop().", "rabbit_mnesia:reset().", "(down)", "rabbit:start().", "True"]
    assert without == wiped


def test_a_broker_that_does_not_stop_is_a_restart_that_did_not_land() -> None:
    assert _restart(True, {"rabbit:stop().": "down"}, lambda: None) == ["rabbit:stop().", "False"]


def test_the_broker_starts_again_whatever_failed_while_it_was_down() -> None:
    asked: list[str] = []

    def evaluate(expression: str, timeout_s: float) -> str:
        asked.append(expression)
        return "ok"

    def fails() -> None:
        raise TimeoutError("held tasks never ended")

    with pytest.raises(TimeoutError):
        node.restart_broker(evaluate, True, fails)
    assert asked == ["rabbit:stop().", "rabbit:start()."]


def test_a_start_that_does_not_answer_ok_is_the_broker_down() -> None:
    refused = {"rabbit:start().": "{error,{already_started,rabbit}}"}
    with pytest.raises(BrokerDown, match=r"^rabbit start: \{error,\{already_started,rabbit\}\}$"):
        _restart(True, refused, lambda: None)


def test_text_goes_to_the_node_as_an_erlang_binary() -> None:
    assert rabbitmq._binary("rig3") == '<<"rig3">>'
    assert rabbitmq._binary('{"delivery-limit": 2}') == '<<"{\\"delivery-limit\\": 2}">>'


def test_a_transport_table_replaces_the_keys_it_names(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path,
        '[rabbitmq]\nwhy = "heartbeats"\nsettings = { heartbeat = 5 }\n'
        "expect = { executions = 1 }\n",
    )
    scenario = parse_scenario(path)
    on_redis, on_rabbitmq = scenario.on("redis"), scenario.on("rabbitmq")
    assert on_redis.expect == {"executions": 2, "duplicate_rows": 1}
    assert on_rabbitmq.expect == {"executions": 1, "duplicate_rows": 1}
    assert on_rabbitmq.settings.heartbeat == 5 and on_rabbitmq.settings.transport == "rabbitmq"
    assert (on_redis.label, on_rabbitmq.label) == ("s", "s@rabbitmq")
    assert on_rabbitmq.why == "heartbeats"


def test_a_skipped_transport_is_skipped_with_its_reason(tmp_path: Path) -> None:
    scenario = parse_scenario(_scenario(tmp_path, '[rabbitmq]\nskip = "no visibility timeout"\n'))
    skipped = scenario.on("rabbitmq")
    reason = skip_reason(skipped, runner=cast(Any, None))  # decided before any runner
    assert reason == "skipped on rabbitmq: no visibility timeout"
    row = skipped_row(skipped, reason)
    assert (row["scenario"], row["transport"], row["verdict"]) == (
        "s@rabbitmq",
        "rabbitmq",
        "skipped",
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "[rabbitmq]\nexpct = { executions = 1 }\n",
            r"s.toml \[rabbitmq\]: unknown key\(s\) expct",
        ),
        ("[rabbitmq]\nsettings = { visibilty = 1 }\n", r"s.toml \[rabbitmq\]: unknown setting"),
        ('[rabbitmq]\nexpect = { executions = "one" }\n', r"s.toml \[rabbitmq\]: expectation"),
        ('[kafka]\nskip = "x"\n', r"unknown key\(s\) kafka"),
    ],
)
def test_a_typo_in_a_transport_table_is_an_error(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_scenario(_scenario(tmp_path, extra))


def test_every_catalog_scenario_says_why_it_differs_or_is_skipped_on_rabbitmq() -> None:
    catalog = load_catalog()
    for name, scenario in catalog.items():
        on_rabbitmq = scenario.on("rabbitmq")
        if on_rabbitmq.expect != scenario.on("redis").expect and not on_rabbitmq.skip:
            assert on_rabbitmq.why, f"{name}: a different expectation on rabbitmq needs its why"
    ordered = on_transports(list(catalog.values()), list(TRANSPORTS))
    assert [s.transport for s in ordered] == ["redis"] * len(catalog) + ["rabbitmq"] * len(catalog)


def test_run_takes_a_scenario_with_its_transport() -> None:
    assert find("late_ack_kill_after_commit_create@rabbitmq").settings.transport == "rabbitmq"
    assert find("late_ack_kill_after_commit_create", "rabbitmq").label.endswith("@rabbitmq")
    with pytest.raises(BadInput, match="unknown transport 'kafka'"):
        find("late_ack_kill_after_commit_create@kafka")
    args = build_parser().parse_args(["chaos", "--transport", "rabbitmq"])
    assert args.transport == "rabbitmq"


def test_fairness_leaves_out_what_only_redis_has() -> None:
    names = [c.name for c in fairness.select_configs(None, "rabbitmq")]
    assert "disable-prefetch" not in names and "late-ack" in names
    with pytest.raises(BadInput, match="disable-prefetch is Redis-only"):
        fairness.select_configs(["disable-prefetch"], "rabbitmq")


def test_the_report_puts_each_scenario_side_by_side_per_transport() -> None:
    def row(name: str, transport: str, executions: int, latency: list[float]) -> dict:
        counts = {"executions": executions, "lost": 0, "duplicate_rows": executions - 1}
        return {
            "scenario": name,
            "transport": transport,
            "verdict": "pass",
            "reasons": [],
            "counts": counts,
            "redelivery_latency_s": latency,
        }

    rows = [row("kill", "redis", 2, [2.3]), row("kill@rabbitmq", "rabbitmq", 2, [0.05])]
    transports, table = transport_table(rows)
    assert transports == ["redis", "rabbitmq"]
    (entry,) = table
    assert entry["scenario"] == "kill"
    assert entry["cells"]["redis"]["latency_s"] == 2.3
    assert entry["cells"]["rabbitmq"]["latency_s"] == 0.05
    assert transport_table(rows[:1]) == (["redis"], [])  # one transport: nothing to compare
    assert json.dumps(table)  # it goes into results as it is


def test_a_variant_finds_its_siblings(tmp_path: Path) -> None:
    scenario = parse_scenario(_scenario(tmp_path, "[rabbitmq]\nexpect = { executions = 1 }\n"))
    back = scenario.on("rabbitmq").on("redis")
    assert (back.transport, (back.expect or {}).get("executions")) == ("redis", 2)


def test_no_module_outside_a_transports_package_branches_on_its_name() -> None:
    """Adding a broker is a package under rig/transports and a registry line: no
    other module imports a transport's own module (but settings, for its
    Parameters) or compares a transport with a broker's name."""
    import ast

    names = set(TRANSPORTS)
    offenders = []
    for path in sorted((ROOT / "rig").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("rig/transports/"):
            continue
        for part in ast.walk(ast.parse(path.read_text())):
            if isinstance(part, ast.ImportFrom) and relative != "rig/settings.py":
                module = part.module or ""
                imported = {f"{module}.{alias.name}" for alias in part.names} | {module}
                if any(f"rig.transports.{name}" in imported for name in names):
                    offenders.append(f"{relative}:{part.lineno} imports a transport")
            if isinstance(part, ast.Compare):
                constants = [c.value for c in ast.walk(part) if isinstance(c, ast.Constant)]
                if names & set(constants):
                    offenders.append(f"{relative}:{part.lineno} compares with a broker's name")
    assert offenders == []
