"""A phase service's clinical state in PostgreSQL: the same tables as store.py, in a schema
named after the service (`harvest`, `implant`), created on start.

One connection, guarded by a lock (the consumer and the clock thread share it); if the
server drops it, the next call connects again, so a PostgreSQL restart costs the calls in
flight (which the bus redelivers) and nothing else.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from shared.clinical.facts import Fact

_TABLES = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.facts (
    seq          BIGSERIAL PRIMARY KEY,
    procedure_id TEXT NOT NULL,
    event_id     TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    actor_id     TEXT NOT NULL,
    payload      JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS facts_procedure ON {s}.facts (procedure_id, seq);
CREATE TABLE IF NOT EXISTS {s}.raised (
    procedure_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    alert_id     TEXT NOT NULL,
    raised_at    TEXT NOT NULL,
    PRIMARY KEY (procedure_id, key)
);
CREATE TABLE IF NOT EXISTS {s}.watched (procedure_id TEXT PRIMARY KEY);
"""

Connection = psycopg.Connection[tuple[Any, ...]]


class PostgresClinicalStore:
    def __init__(self, url: str, schema: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", schema):
            raise ValueError(f"not a schema name: {schema!r}")
        self._url, self._schema = url, sql.Identifier(schema)
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        with self._cursor() as conn:
            for statement in filter(str.strip, _TABLES.split(";")):
                conn.execute(sql.SQL(statement).format(s=self._schema))

    @contextmanager
    def _cursor(self) -> Iterator[Connection]:
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            yield self._conn

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._schema)

    def add(self, procedure_id: str, fact: Fact) -> bool:
        with self._cursor() as conn:
            cur = conn.execute(
                self._sql("INSERT INTO {s}.facts (procedure_id, event_id, type, occurred_at,"
                          " actor_id, payload) VALUES (%s, %s, %s, %s, %s, %s)"
                          " ON CONFLICT (event_id) DO NOTHING"),
                (procedure_id, fact.event_id, fact.type, fact.occurred_at, fact.actor_id,
                 Jsonb(dict(fact.payload))),
            )  # fmt: skip
            return cur.rowcount == 1

    def facts(self, procedure_id: str) -> list[Fact]:
        with self._cursor() as conn:
            rows = conn.execute(
                self._sql("SELECT event_id, type, occurred_at, actor_id, payload, seq"
                          " FROM {s}.facts WHERE procedure_id = %s ORDER BY seq"),
                (procedure_id,),
            ).fetchall()  # fmt: skip
        return [Fact(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows]

    def raised(self, procedure_id: str) -> set[str]:
        with self._cursor() as conn:
            rows = conn.execute(
                self._sql("SELECT key FROM {s}.raised WHERE procedure_id = %s"), (procedure_id,)
            ).fetchall()
        return {str(r[0]) for r in rows}

    def mark_raised(self, procedure_id: str, alerts: Iterable[tuple[str, str]], at: str) -> None:
        with self._cursor() as conn, conn.cursor() as cur:
            cur.executemany(
                self._sql("INSERT INTO {s}.raised VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"),
                [(procedure_id, key, alert_id, at) for key, alert_id in alerts],
            )

    def empty(self) -> bool:
        with self._cursor() as conn:
            row = conn.execute(self._sql("SELECT EXISTS (SELECT 1 FROM {s}.facts)")).fetchone()
        return not (row and row[0])

    def watch(self, procedure_id: str, on: bool) -> None:
        with self._cursor() as conn:
            if on:
                conn.execute(
                    self._sql("INSERT INTO {s}.watched VALUES (%s) ON CONFLICT DO NOTHING"),
                    (procedure_id,),
                )
            else:
                conn.execute(
                    self._sql("DELETE FROM {s}.watched WHERE procedure_id = %s"), (procedure_id,)
                )

    def watched(self) -> list[str]:
        with self._cursor() as conn:
            return [str(r[0]) for r in conn.execute(self._sql("SELECT * FROM {s}.watched"))]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
