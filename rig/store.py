"""The target's own database on the rig's database server: created and migrated
once, emptied between runs, and read for the task's effects. Plain SQL over
psycopg or sqlite3; Django runs only in subprocesses (rig.agent manage), so
the controller needs no Django settings of its own.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql as pgsql

from rig.backends.base import with_database
from rig.errors import BadInput
from rig.target import Target, agent_command, answer

# Tables `migrate` fills and no task should lose: emptying them would break the project.
KEPT_TABLES = {"django_migrations", "django_content_type", "auth_permission", "django_site"}
FUNCTION = re.compile(r"^[\w.]+:[\w.]+$")


class Store:
    """One project's database; each run's target (same project, its own task,
    fixtures and effects) is passed to what depends on it."""

    def __init__(self, server_url: str, target: Target) -> None:
        self.target = target  # the first run's: its project is everyone's here
        self.url = with_database(server_url, target.database)
        self.server_url = server_url
        self.is_sqlite = urlsplit(server_url).scheme == "sqlite"
        self.sqlite_path = unquote(urlsplit(self.url).path)[1:]

    def _query(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run the statements in one transaction; the last one's rows."""
        rows: list[tuple[Any, ...]] = []
        if self.is_sqlite:
            with closing(sqlite3.connect(self.sqlite_path, timeout=30)) as connection:
                for sql in statements:
                    rows = connection.execute(sql).fetchall()
                connection.commit()
            return rows
        with psycopg.connect(self.url, connect_timeout=10) as connection:
            for sql in statements:
                cursor = connection.execute(sql)
                rows = cursor.fetchall() if cursor.description else []
        return rows

    # --- once per target ---------------------------------------------------
    def prepare(self) -> None:
        """Create the target's database, migrate the project into it, load its fixtures."""
        if not self.target.django:
            return
        if not self.is_sqlite:
            with psycopg.connect(self.server_url, autocommit=True, connect_timeout=10) as admin:
                exists = admin.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.target.database,)
                ).fetchone()
                if not exists:
                    admin.execute(
                        pgsql.SQL("CREATE DATABASE {}").format(
                            pgsql.Identifier(self.target.database)
                        )
                    )
        agent_command(["manage", "migrate", "--noinput", "-v", "0"], self.target, self.url)

    def drop(self) -> None:
        """The target's database gone from the server (its connections closed first)."""
        if self.is_sqlite:
            return
        drop_databases(self.server_url, [self.target.database])

    def _load_fixtures(self, target: Target) -> None:
        if target.fixtures:
            agent_command(["manage", "loaddata", "-v", "0", *target.fixtures], target, self.url)

    # --- between runs -------------------------------------------------------
    def tables(self) -> list[str]:
        if self.is_sqlite:
            listed = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            listed = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        names = [row[0] for row in self._query(listed)]
        return [
            name for name in names if name not in KEPT_TABLES and not name.startswith("sqlite_")
        ]

    def reset(self, target: Target) -> None:
        """Every row the last run (or the fixtures) left, gone; this run's fixtures in."""
        if not target.django:
            return
        tables = self.tables()
        if self.is_sqlite:
            self._query(*(f'DELETE FROM "{table}"' for table in tables))
        elif tables:
            quoted = ", ".join(f'"{table}"' for table in tables)
            self._query(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
        self._load_fixtures(target)

    # --- after a run ------------------------------------------------------
    def effects(self, target: Target) -> list[tuple[str, int]]:
        """(business key, count) rows of the target's effects query or function."""
        effects = target.effects
        if not effects:
            return []
        if FUNCTION.match(effects):
            done = agent_command(["effects", effects], target, self.url)
            rows = answer(done, f"effects {effects}")
        else:
            try:
                rows = self._query(effects)
            except (psycopg.Error, sqlite3.Error) as error:
                message = str(error).strip().splitlines()[0]
                raise BadInput(f"effects query failed: {message}") from None
        if not all(len(row) == 2 and isinstance(row[1], int) for row in rows):
            raise BadInput(
                f"effects must give (business key, count) rows; got {list(rows)[:1]!r} first"
            )
        return [(str(key), count) for key, count in rows]


def drop_databases(server_url: str, names: list[str] | None = None) -> list[str]:
    """Drop these databases (default: every rig_* one) from a PostgreSQL server;
    the names dropped."""
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as admin:
        if names is None:
            rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE 'rig\\_%'")
            names = [row[0] for row in rows.fetchall()]
        for name in names:
            admin.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )
    return names
