"""Every stored DICOM object the ledger names, checked against the SHA-256 the ledger holds
for it: after a restore, this proves the object store came back whole and unchanged."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from services.audit.store import Query, Store

PAGE = 1000


@dataclass
class ObjectsReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)  # stored_as paths
    altered: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.missing and not self.altered


def check_objects(store: Store, imaging_root: Path) -> ObjectsReport:
    """Each (stored_as, sha256) of the ledger's imaging.capture_received entries, once."""
    report = ObjectsReport()
    seen: set[tuple[str, str]] = set()
    after = -1
    while True:
        page = store.entries(Query({"type": "imaging.capture_received"}, after_seq=after,
                                   limit=PAGE))  # fmt: skip
        for entry in page:
            payload = entry.content()["event"].get("payload", {})
            stored_as, sha = payload.get("stored_as"), payload.get("sha256")
            if not isinstance(stored_as, str) or not isinstance(sha, str):
                continue
            if (stored_as, sha) in seen:
                continue
            seen.add((stored_as, sha))
            report.checked += 1
            path = imaging_root / stored_as
            if not path.is_file():
                report.missing.append(stored_as)
            elif _sha256(path) != sha:
                report.altered.append(stored_as)
        if len(page) < PAGE:
            return report
        after = page[-1].seq


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
