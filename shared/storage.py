"""When a service's database is unreachable for now, whichever backend it is on.

A service subscribes its consumer with `bus.subscribe(queue, handler, transient=UNAVAILABLE)`:
the handler lets these errors propagate, and the bus holds the batch and hands it over again
with back-off, without using up the messages' delivery limit.
"""

from __future__ import annotations

import sqlite3

import psycopg

# DB-API's OperationalError is "an error related to the database's operation": a server
# restarting, a dropped connection, a locked file. Retrying later is the answer to each.
UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
