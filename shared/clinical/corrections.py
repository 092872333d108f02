"""Corrections: `record.corrected` changes the fields it names in the event it supersedes.

The original stays in the ledger; only the state uses the new values. Corrections are applied
before the fold, so a correction that arrives before its original applies once it is there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from shared.clinical.facts import Alert, Fact


def apply_corrections(facts: Iterable[Fact]) -> tuple[list[Fact], list[Alert], dict[str, str]]:
    """The facts with every correction applied; corrections themselves are not facts.

    A change names a payload field ("dose", "payload.dose", "target.level") or "occurred_at".
    An `old` value that does not match the record is applied all the same and alerted on.
    Also returns the alerts, and which correction last changed each event.
    """
    originals: dict[str, Fact] = {}
    corrections: list[Fact] = []
    for fact in facts:
        if fact.type == "record.corrected":
            corrections.append(fact)
        else:
            originals[fact.event_id] = fact
    alerts: list[Alert] = []
    corrected: dict[str, str] = {}
    for correction in sorted(corrections, key=lambda f: (f.occurred_at, f.seq)):
        target_id = str(correction.payload.get("supersedes"))
        target = originals.get(target_id)
        if target is None:
            continue  # the original has not arrived (yet): applied when it does
        originals[target_id] = _corrected(target, correction, alerts)
        corrected[target_id] = correction.event_id
    return list(originals.values()), alerts, corrected


def _corrected(target: Fact, correction: Fact, alerts: list[Alert]) -> Fact:
    """`target` as `correction` changes it; a mismatched `old` value adds an alert."""
    payload: dict[str, Any] = _deep_copy(target.payload)
    occurred_at = target.occurred_at
    for name, change in dict(correction.payload.get("changes", {})).items():
        path = name.removeprefix("payload.").split(".")
        if path == ["occurred_at"]:
            current: Any = occurred_at.isoformat()
            new = change.get("new")
            if isinstance(new, str):
                occurred_at = datetime.fromisoformat(new)
        else:
            current = _get(payload, path)
            _set(payload, path, change.get("new"))
        if "old" in change and change.get("old") != current:
            alerts.append(Alert(
                f"correction_mismatch:{correction.event_id}:{name}", "correction_mismatch",
                "warning",
                f"correction of {name}: the record held {current!r}, not {change.get('old')!r}",
                (correction.event_id, target.event_id),
            ))  # fmt: skip
    return Fact(target.event_id, target.type, occurred_at, target.actor_id, payload, target.seq)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _get(payload: Mapping[str, Any], path: list[str]) -> Any:
    node: Any = payload
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _set(payload: dict[str, Any], path: list[str], value: Any) -> None:
    node = payload
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value
