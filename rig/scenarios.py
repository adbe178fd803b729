"""The scenario catalog: one TOML file per scenario in chaos/.

A file holds a description, [settings] (the axes, see rig.settings), an
[expect] table of counts (see rig.checker) and optionally `requires`
(["postgresql"] where the claim only holds on a real database). The file
name is the scenario's name and its pytest marker.
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


def parse_scenario(path: Path, defaults: dict[str, Any] | None = None) -> Scenario:
    """One file; `defaults` (your project's --app and the like, from the command
    line) stand wherever the file's [settings] says nothing."""
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        # tomllib's message ends with "(at line L, column C)".
        raise BadInput(f"{path}: does not parse: {error}") from None
    unknown = sorted(set(document) - {"description", "settings", "expect", "requires"})
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
    return Scenario(
        name=path.stem,
        description=str(document.get("description", "")).strip(),
        settings=settings_from_mapping((defaults or {}) | document.get("settings", {}), str(path)),
        expect=expect,
        requires=requires,
    )


def load_catalog(
    directory: Path = CATALOG_DIR, defaults: dict[str, Any] | None = None
) -> dict[str, Scenario]:
    if not directory.is_dir():
        raise BadInput(f"catalog {directory}: no such directory")
    if not any(directory.glob("*.toml")):
        raise BadInput(f"catalog {directory}: no scenario files (*.toml) there")
    return {path.stem: parse_scenario(path, defaults) for path in sorted(directory.glob("*.toml"))}


def find(name: str, directory: Path = CATALOG_DIR) -> Scenario:
    catalog = load_catalog(directory)
    if name not in catalog:
        raise BadInput(f"unknown scenario {name!r}; known: {', '.join(catalog)}")
    return catalog[name]
