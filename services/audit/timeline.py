"""One procedure told as one story: clinical order, corrections applied, originals kept.

A `record.corrected` never hides what it supersedes: the corrected event shows how it now
reads, how it was first recorded (`original`), and each correction (who, when, why, old/new).
A `record.signed` shows on every event it signed, and stops being valid once any of those
events is corrected after the signature.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from services.audit.store import Entry
from shared.events import content_sha256, signed_content_sha256

ENVELOPE_FIELDS = ("occurred_at", "actor")  # what a correction may fix outside the payload


def _apply(item: dict[str, Any], field: str, value: Any) -> None:
    """`payload.dose`, `dose` (a payload key) or an envelope field such as `occurred_at`."""
    head = field.split(".", 1)[0]
    if head in ENVELOPE_FIELDS:
        _set_path(item, field, value)
    else:
        _set_path(item["payload"], field.removeprefix("payload."), value)


def _set_path(root: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = root
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def _item(seq: int, content: dict[str, Any]) -> dict[str, Any]:
    event = content["event"]
    item = {
        "seq": seq,
        "event_id": event["event_id"],
        "type": event.get("type"),
        "occurred_at": event.get("occurred_at"),
        "recorded_at": event.get("recorded_at"),
        "actor": event.get("actor"),
        "source": event.get("source"),
        "disposition": content["disposition"],
        "payload": copy.deepcopy(event.get("payload", {})),
    }
    for key in ("late", "entered_by"):
        if key in event:
            item[key] = event[key]
    if "reason" in content:
        item["rejection_reason"] = content["reason"]
    return item


def _binding(payload: dict[str, Any], originals: dict[str, dict[str, Any]]) -> str:
    """Does the signature's hash match the signed events exactly as they were recorded?"""
    claimed = payload.get("signed_sha256")
    ids = payload.get("event_ids", [])
    if claimed is None or any(i not in originals for i in ids):
        return "unchecked"  # signed before binding existed, or events outside this story
    digests = {i: content_sha256(originals[i]) for i in ids}
    return "intact" if signed_content_sha256(digests) == claimed else "mismatch"


def build(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    contents = [(e.seq, e.content()) for e in entries]
    originals = {c["event"]["event_id"]: c["event"] for _, c in contents}
    items = [_item(seq, content) for seq, content in contents]
    by_id = {item["event_id"]: item for item in items}
    corrected_at: dict[str, int] = {}  # event_id -> seq of its latest correction
    for item in items:
        if item["type"] != "record.corrected" or item["disposition"] != "accepted":
            continue
        target = by_id.get(item["payload"].get("supersedes"))
        if target is None:
            continue
        item["corrects"] = target["event_id"]
        target.setdefault(
            "original", copy.deepcopy({k: target[k] for k in ("payload", *ENVELOPE_FIELDS)})
        )
        changes = item["payload"].get("changes", {})
        for field, change in changes.items():
            _apply(target, field, change.get("new"))
        target.setdefault("corrections", []).append(
            {
                "event_id": item["event_id"],
                "seq": item["seq"],
                "reason": item["payload"].get("reason"),
                "changes": changes,
                "by": item.get("entered_by") or item.get("actor"),
                "recorded_at": item["recorded_at"],
            }
        )
        corrected_at[target["event_id"]] = item["seq"]
    for item in items:
        if item["type"] != "record.signed" or item["disposition"] != "accepted":
            continue
        signed_ids = item["payload"].get("event_ids", [])
        later = [i for i in signed_ids if corrected_at.get(i, -1) > item["seq"]]
        binding = _binding(item["payload"], originals)
        signature = {
            "event_id": item["event_id"],
            "seq": item["seq"],
            "signer_id": item["payload"].get("signer_id"),
            "meaning": item["payload"].get("meaning"),
            "recorded_at": item["recorded_at"],
            "signed_sha256": item["payload"].get("signed_sha256"),
            "binding": binding,
            "valid": not later and binding != "mismatch",
        }
        if later:
            signature["invalidated_by_corrections_of"] = later
        for signed_id in signed_ids:
            if signed_id in by_id:
                by_id[signed_id].setdefault("signatures", []).append(signature)
    items.sort(key=lambda i: (_instant(i["occurred_at"]), i["seq"]))
    return items


def _instant(value: object) -> datetime:
    """A point in time to sort by: as text, "…Z" and "…+01:00" would sort out of order."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)  # unreadable: last, in ledger order
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
