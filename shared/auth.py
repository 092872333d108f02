"""Bearer tokens with a role. Only a SHA-256 of each token is stored; the token is shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared import sqlite
from shared.roles import ROLES, Role

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    role         TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signers (
    user_id    TEXT PRIMARY KEY,
    salt       BLOB NOT NULL,
    scrypt     BLOB NOT NULL,
    set_at     TEXT NOT NULL
);
"""
# scrypt work factors for signing passwords (RFC 7914; ~16 MiB, tens of ms per check)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD = 8


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
        self._conn.executescript(_SCHEMA)
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

    def set_signing_password(self, user: str, password: str) -> None:
        """The secret a signer types again at every signature (21 CFR 11.200 re-authentication)."""
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a signing password has at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO signers VALUES (?, ?, ?, ?)",
                (user, salt, digest, datetime.now(UTC).isoformat()),
            )

    def check_signing_password(self, user: str, password: str) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT salt, scrypt FROM signers WHERE user_id = ?", (user,)
            ).fetchone()
        if row is None:
            return False
        digest = hashlib.scrypt(password.encode(), salt=row[0], **_SCRYPT)
        return hmac.compare_digest(digest, row[1])

    def close(self) -> None:
        self._conn.close()
