"""The command line as a user meets it: help on every flag, output that fits
100 columns, a replay command that reproduces the run, and a crashing
scenario that becomes a result instead of ending the catalog."""

from __future__ import annotations

import pytest

from tests.helpers import subcommands


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_flag_of_every_command_says_what_it_does(name: str) -> None:
    command = subcommands()[name]
    description = command.description or ""
    examples = description.count("python -m rig") + description.count("celery-rig")
    assert examples >= 2 or name == "clean", f"{name}: --help needs two examples"
    for action in command._actions:
        assert action.help, f"{name} {'/'.join(action.option_strings) or action.dest}: no help"
