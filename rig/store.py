"""Reads the attempt ledger and the side-effect rows, and empties them
between scenarios. Plain SQL over psycopg or sqlite3, so the controller
needs no Django settings of its own; table names are Django's defaults for
exam_app.users (tests/test_store.py checks them against the models).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg

from exam_app.envconf import sqlite_path

LEDGER_TABLE = "users_attempt"
EFFECT_TABLES = {
    "create": "users_naiverecord",
    "get_or_create": "users_idempotentrecord",
    "get_or_create_unconstrained": "users_unconstrainedrecord",
}
ALL_TABLES = (LEDGER_TABLE, *EFFECT_TABLES.values())
LEDGER_COLUMNS = (
    "task_id, task_name, business_key, hostname, pid, attempt, redelivered, "
    "started_at, written_at, finished_at"
)


def _epoch(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    # SQLite stores Django datetimes as ISO text.
    return datetime.fromisoformat(str(value)).timestamp()


class Store:
    def __init__(self, database_url: str) -> None:
        self.url = database_url
        parts = urlsplit(database_url)
        self.is_sqlite = parts.scheme == "sqlite"
        self.sqlite_path = sqlite_path(database_url)

    @property
    def engine(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.is_sqlite:
            with closing(sqlite3.connect(self.sqlite_path, timeout=30)) as connection:
                return connection.execute(sql).fetchall()
        with psycopg.connect(self.url, connect_timeout=10) as connection:
            return connection.execute(sql).fetchall()

    def reset(self) -> None:
        if self.is_sqlite:
            with closing(sqlite3.connect(self.sqlite_path, timeout=30)) as connection:
                for table in ALL_TABLES:
                    connection.execute(f"DELETE FROM {table}")
                connection.commit()
            return
        with psycopg.connect(self.url, connect_timeout=10) as connection:
            connection.execute(f"TRUNCATE {', '.join(ALL_TABLES)} RESTART IDENTITY")

    def ledger(self) -> list[dict[str, Any]]:
        rows = self._query(f"SELECT {LEDGER_COLUMNS} FROM {LEDGER_TABLE} ORDER BY id")
        names = [name.strip() for name in LEDGER_COLUMNS.split(",")]
        result = []
        for row in rows:
            record = dict(zip(names, row, strict=True))
            record["redelivered"] = bool(record["redelivered"])
            for stamp in ("started_at", "written_at", "finished_at"):
                record[stamp] = _epoch(record[stamp])
            result.append(record)
        return result

    def effect_rows(self, task: str) -> list[dict[str, Any]]:
        table = EFFECT_TABLES[task]
        rows = self._query(f"SELECT business_key, task_id FROM {table} ORDER BY id")
        return [{"table": table, "business_key": key, "task_id": tid} for key, tid in rows]
