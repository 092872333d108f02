"""The roles a bearer token carries (a module of its own: small processes check tokens
without loading the event catalogue)."""

from __future__ import annotations

from typing import Literal

# monitor: a metrics scraper's token (GET /metrics, nothing else)
Role = Literal["nurse", "physician", "lab", "compliance", "admin", "monitor"]
ROLES: tuple[Role, ...] = ("nurse", "physician", "lab", "compliance", "admin", "monitor")
