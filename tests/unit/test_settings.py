"""Settings and scenario files: every typo and impossible combination is an error."""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from rig import schema
from rig.errors import BadInput
from rig.scenarios import find, load_catalog, parse_scenario
from rig.settings import Settings, make_settings, settings_from_mapping
from tests.helpers import subcommands


def test_given_settings_override_the_app_and_the_rest_stay_its_own() -> None:
    settings = make_settings(acks="early", reject_on_worker_lost=True, visibility_timeout=3)
    conf = json.loads(settings.worker_environment()["RIG_CONF"])
    assert conf["task_acks_late"] is False and conf["task_reject_on_worker_lost"] is True
    assert conf["broker_transport_options"]["visibility_timeout"] == 3
    assert conf["broker_transport_options"]["unacked_restore_throttle"] == 1
    assert conf["result_backend"] is None  # never the user's result store
    # Not given: the app's own pool, concurrency, prefetch and time limit stand.
    assert not {"worker_pool", "worker_concurrency", "worker_prefetch_multiplier"} & set(conf)
    assert "task_time_limit" not in conf
    assert "task_publish_retry_policy" not in conf  # Celery's own: 3 retries within 0.6 s


def test_a_publish_retry_lasts_the_seconds_given() -> None:
    conf = json.loads(make_settings(publish_retry_seconds=30).worker_environment()["RIG_CONF"])
    policy = conf["task_publish_retry_policy"]
    assert policy["max_retries"] * policy["interval_max"] == 30
    assert policy["interval_start"] == 0 and policy["interval_step"] == policy["interval_max"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"acks": "eraly"}, "acks='eraly'"),
        ({"fault": "pool-child", "pool": "solo"}, "needs pool=prefork"),
        ({"restart": True}, "restart=true needs fault=container"),
        ({"workers": 0}, "workers=0: must be at least 1"),
        ({"tasks": 1.5}, "tasks=1.5: expected a whole number"),
        ({"visibility_timeout": "soon"}, "expected a number"),
        ({"reject_on_worker_lost": "yes"}, "expected true or false"),
        ({"ack": "late"}, "unknown setting(s) ack"),
        ({"workload": "countdown"}, "workload=countdown needs countdown > 0"),
        ({"workload": "cron"}, "workload='cron'"),
        ({"fault": "pool-child", "at": "received"}, "at=received needs a fault that acts on"),
        ({"workload": "producer"}, "workload=producer runs the built-in producer: it needs"),
        ({"at": "before_commit", "fault": "stall"}, "at='before_commit': expected one of"),
        ({"publish": "later"}, "publish='later'"),
        ({"countdown": 5}, "countdown needs workload=countdown"),
        ({"publish": "in_transaction"}, "publish needs workload=producer"),
        ({"fault": "broker-outage", "outage_seconds": -1}, "outage_seconds=-1: must be at least 0"),
        ({"workload": "chord"}, "workload=chord needs result_backend=redis"),
        ({"chord_size": 3}, "chord_size needs workload=chord"),
        ({"result_backend": "database"}, "result_backend='database'"),
        ({"http_status": 42}, "http_status=42: must be at least 100"),
    ],
)
def test_bad_settings_are_errors(values: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from_mapping(values, "here")


def test_catalog_has_the_issue_scenarios() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 7
    kills = {(s.settings.acks, s.settings.fault, s.settings.at) for s in catalog.values()}
    assert ("early", "container", "before_write") in kills
    assert ("late", "container", "in_transaction") in kills
    assert any((s.expect or {}).get("duplicate_rows") == 1 for s in catalog.values())


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(BadInput, match="known: .*early_ack_kill_before_write"):
        find("no_such_scenario")


def test_a_file_that_does_not_parse_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('description = "x"\n[settings]\nacks = "late\n')
    with pytest.raises(BadInput, match=r"broken.toml: does not parse: .*line 3"):
        parse_scenario(path)


def test_a_file_with_a_typo_in_settings_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[settings]\nkil = "container"\n[expect]\nlost = 0\n')
    with pytest.raises(BadInput, match="typo.toml: unknown setting"):
        parse_scenario(path)


def test_every_setting_has_help_and_a_flag() -> None:
    run_help = subcommands()["run"].format_help()
    for name, _default, text in schema.describe(Settings):
        assert text, f"{name} has no help"
        assert schema.flag_name(name) in run_help, f"{name} has no flag in `run --help`"


def test_a_marker_is_bound_to_the_settings_signature() -> None:
    assert schema.bind(Settings, (), {"fault": "container"}, "t").fault == "container"
    with pytest.raises(BadInput, match="t: got an unexpected keyword argument 'kil'"):
        schema.bind(Settings, (), {"kil": "container"}, "t")
    with pytest.raises(BadInput, match="too many positional arguments"):
        schema.bind(Settings, ("late",), {}, "t")


@pytest.mark.parametrize(
    "settings",
    [
        make_settings(),
        make_settings(acks="early", fault="pool-child", at="in_transaction", tasks=3),
        make_settings(
            reject_on_worker_lost=True, restart=True, fault="container", task_seconds=1.5
        ),
    ],
)
def test_the_flags_of_a_setting_recreate_it(settings: Settings) -> None:
    """The replay command's flags parse back into exactly the same settings."""
    from rig.cli import build_parser

    args = build_parser().parse_args(["run", *schema.as_flags(settings)])
    assert make_settings(**schema.given_flags(args, Settings)) == settings


def test_checkpoints_are_the_automatic_ones_or_a_users_own_name() -> None:
    from rig.checkpoints import AUTOMATIC

    for point in (*AUTOMATIC, "before_http", "after_http", "after_email", "next_published"):
        assert make_settings(at=point).at == point
    with pytest.raises(BadInput, match="expected one of task_start"):
        make_settings(at="after_write")  # exam_app names none of its own
    assert make_settings(app="shop.celery:app", task="t", at="charged").at == "charged"


def test_every_fault_is_complete_and_needs_only_known_capabilities() -> None:
    from rig.backends.base import CAPABILITIES, lacks
    from rig.backends.local import LocalBackend
    from rig.faults.registry import FAULTS

    for name, fault in FAULTS.items():
        # A fault lands on a parked execution (start) or brings its own plan (Plan).
        lands = callable(getattr(fault, "start", None)) or hasattr(fault, "Plan")
        assert fault.NAME == name and fault.SUMMARY and lands, name
        assert set(fault.NEEDS) <= set(CAPABILITIES), f"{name} needs {fault.NEEDS}"
    assert set(lacks(LocalBackend("test"))) <= set(CAPABILITIES)
    assert schema.choices(Settings, "fault") == ("none", *FAULTS)


def test_the_written_out_settings_hold_every_faults_and_transports_parameters() -> None:
    """Settings is written out so mypy checks it: a fault, transport or workload
    added to its registry with Parameters must be added to its bases too."""
    from rig.faults.registry import FAULTS
    from rig.transports import TRANSPORTS
    from rig.workloads.registry import WORKLOADS

    modules = [*FAULTS.values(), *TRANSPORTS.values(), *WORKLOADS.values()]
    for module in modules:
        parameters = getattr(module, "Parameters", None)
        assert parameters is None or issubclass(Settings, parameters), module.__name__
    declared = {f.name for m in modules if hasattr(m, "Parameters") for f in fields(m.Parameters)}
    assert declared <= {f.name for f in fields(Settings)}


def test_a_replay_names_only_what_differs_from_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/celery-rig", "explore"])
    settings = make_settings(acks="early", fault="container", at="before_write", tasks=1)
    assert schema.as_flags(settings) == [
        "--acks", "early", "--fault", "container", "--at", "before_write",
    ]  # fmt: skip
    from rig.explore import DEFAULTS, ExploreSettings, replay_command

    explored = make_settings(**(DEFAULTS | {"acks": "late", "tasks": 1}))
    words = replay_command(explored, ExploreSettings(), seed=7, backend="local").split()
    # Explore's own 200 tasks would come back without the flag; its 3 workers need none.
    assert words[words.index("--tasks") + 1] == "1" and "--workers" not in words, words
    assert words[:2] == ["celery-rig", "explore"], words  # what a user outside a checkout runs
    assert words[words.index("--seed") + 1] == "7", words
    monkeypatch.setattr(sys, "argv", ["/work/rig/__main__.py", "explore"])
    words = replay_command(explored, ExploreSettings(), seed=7, backend="local").split()
    assert words[:4] == ["python", "-m", "rig", "explore"], words  # what a checkout runs


def test_a_help_that_names_its_default_is_not_given_a_second_one() -> None:
    run = subcommands()["run"]
    helps = {action.dest: action.help or "" for action in run._actions}
    assert helps["app"].count("(default:") == 1, helps["app"]
    assert helps["project_dir"].count("(default:") == 1, helps["project_dir"]
    assert "keep the app's own" in helps["time_limit"], helps["time_limit"]
