"""Bearer tokens with a role. Only a SHA-256 of each token is stored; the token is shown once."""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared import sqlite
from shared.events import ROLES, Role

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    role         TEXT NOT NULL,
    created_at   TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Principal:
    user: str
    role: Role


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Shared by bedside, audit and the CLI: `<data dir>/tokens.sqlite3`."""

    def __init__(self, data_dir: Path) -> None:
        self._conn = sqlite.connect(data_dir / "tokens.sqlite3")
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def create(self, role: str, user: str) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        if not user.strip():
            raise ValueError("user must not be empty")
        token = "pt_" + secrets.token_urlsafe(32)
        with self._lock:
            self._conn.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?)",
                (_digest(token), user.strip(), role, datetime.now(UTC).isoformat()),
            )
        return token

    def lookup(self, token: str) -> Principal | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT user_id, role FROM tokens WHERE token_sha256 = ?", (_digest(token),)
            ).fetchone()
        if row is None or row[1] not in ROLES:
            return None
        return Principal(user=row[0], role=row[1])

    def close(self) -> None:
        self._conn.close()
