"""The scenario catalog: one TOML file per scenario in chaos/.

A file holds a description, [settings] (the axes, see rig.settings), an
[expect] table of counts (see rig.checker) and optionally `requires`
(["postgresql"] where the claim only holds on a real database). The file
name is the scenario's name and its pytest marker.

Every scenario runs on every transport (rig.transports). A table named after
one, [rabbitmq] say, says how it differs there: `why` (the source or
documentation line behind the difference), `settings` and `expect` (each
replacing the file's keys it names), or `skip` (why the scenario cannot
apply there: it is skipped with that reason, never passed).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.checker import Expected, make_expectation
from rig.errors import BadInput
from rig.settings import Settings, settings_from_mapping
from rig.transports import DEFAULT_TRANSPORT, TRANSPORTS

# RIG_CATALOG_DIR points the rig at another catalog (the tests use it for broken files).
CATALOG_DIR = Path(os.environ.get("RIG_CATALOG_DIR") or Path(__file__).resolve().parent / "chaos")
REQUIREMENTS = ("postgresql",)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    settings: Settings
    expect: dict[str, Expected] | None  # None: a matrix cell, only observed
    requires: tuple[str, ...] = field(default=())
    transport: str = DEFAULT_TRANSPORT
    skip: str = ""  # why it cannot apply to its transport (the file's `skip`)
    why: str = ""  # the source or documentation line behind its transport's expectation
    # The same scenario on each transport (the file's per-transport tables applied).
    variants: dict[str, Scenario] = field(default_factory=dict, repr=False, compare=False)

    @property
    def label(self) -> str:
        """Its name in results: the file's name, with the transport unless Redis."""
        if self.transport == DEFAULT_TRANSPORT:
            return self.name
        return f"{self.name}@{self.transport}"

    def on(self, transport: str) -> Scenario:
        """This scenario on `transport` (it may say `skip`)."""
        return self.variants.get(transport, self)


def parse_scenario(path: Path, defaults: dict[str, Any] | None = None) -> Scenario:
    """One file; `defaults` (your project's --app and the like, from the command
    line) stand wherever the file's [settings] says nothing."""
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        # tomllib's message ends with "(at line L, column C)".
        raise BadInput(f"{path}: does not parse: {error}") from None
    unknown = sorted(set(document) - {"description", "settings", "expect", "requires", *TRANSPORTS})
    if unknown:
        raise BadInput(f"{path}: unknown key(s) {', '.join(unknown)}")
    requires = tuple(document.get("requires", ()))
    for requirement in requires:
        if requirement not in REQUIREMENTS:
            raise BadInput(f"{path}: unknown requirement {requirement!r}; known: {REQUIREMENTS}")
    if not document.get("expect"):
        raise BadInput(f"{path}: a catalog scenario needs an [expect] table")
    try:
        expect = make_expectation(**document["expect"])
    except BadInput as error:
        raise BadInput(f"{path}: {error}") from None
    base = (defaults or {}) | document.get("settings", {})
    settings = settings_from_mapping(base, str(path))
    scenario = Scenario(
        name=path.stem,
        description=str(document.get("description", "")).strip(),
        settings=settings,
        expect=expect,
        requires=requires,
        transport=settings.transport,
    )
    for transport in TRANSPORTS:
        scenario.variants[transport] = _variant(path, scenario, document, base, transport)
    return scenario


def _variant(
    path: Path, scenario: Scenario, document: dict[str, Any], base: dict[str, Any], transport: str
) -> Scenario:
    table = document.get(transport, {})
    where = f"{path} [{transport}]"
    unknown = sorted(set(table) - {"why", "skip", "settings", "expect"})
    if unknown:
        raise BadInput(f"{where}: unknown key(s) {', '.join(unknown)}")
    skip = str(table.get("skip", ""))
    values = base | {"transport": transport} | table.get("settings", {})
    try:
        expect = make_expectation(**(document["expect"] | table.get("expect", {})))
    except BadInput as error:
        raise BadInput(f"{where}: {error}") from None
    # A skipped variant is never run: it keeps the file's settings, which may
    # not suit its transport.
    settings = scenario.settings if skip else settings_from_mapping(values, where)
    return Scenario(
        scenario.name,
        scenario.description,
        settings,
        expect,
        scenario.requires,
        transport=transport,
        skip=skip,
        why=str(table.get("why", "")).strip(),
        variants=scenario.variants,  # one table for all: any variant finds its siblings
    )


def load_catalog(
    directory: Path = CATALOG_DIR, defaults: dict[str, Any] | None = None
) -> dict[str, Scenario]:
    if not directory.is_dir():
        raise BadInput(f"catalog {directory}: no such directory")
    if not any(directory.glob("*.toml")):
        raise BadInput(f"catalog {directory}: no scenario files (*.toml) there")
    return {path.stem: parse_scenario(path, defaults) for path in sorted(directory.glob("*.toml"))}


def find(name: str, transport: str = DEFAULT_TRANSPORT, directory: Path = CATALOG_DIR) -> Scenario:
    """A catalog scenario on a transport; `name@transport` (a result's label) names both."""
    name, _, suffix = name.partition("@")
    catalog = load_catalog(directory)
    if name not in catalog:
        raise BadInput(f"unknown scenario {name!r}; known: {', '.join(catalog)}")
    transport = suffix or transport
    if transport not in TRANSPORTS:
        raise BadInput(f"unknown transport {transport!r}; known: {', '.join(TRANSPORTS)}")
    return catalog[name].on(transport)
