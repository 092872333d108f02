"""`proctrail verify`: recompute the whole ledger offline and name the first bad entry.

A fast pass re-hashes every leaf, rebuilds the tree, checks every stored interior node and
compares the root with stored checkpoints (the latest, whose signature is checked, and one per
MILESTONE entries; all of them with `all_signatures`) and with an outside one, if given. Where
a root disagrees, a detailed pass over that stretch reads each leaf's own `seq` and `prev_root`
(the hash chain) to say which entry is the first that is not what was appended.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

from services.audit.checkpoint import Checkpoint, NoteVerifier, parse_note
from services.audit.merkle import Frontier, node_hash
from services.audit.store import Store

Progress = Callable[[int, int], None]
MILESTONE = 4096


@dataclass
class Report:
    size: int = 0
    root: bytes = b""
    checkpoints: int = 0
    signatures: int = 0
    first_bad_seq: int | None = None
    problem: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None and not self.problem


class _Bad(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def _copy(f: Frontier) -> Frontier:
    return Frontier(f.size, list(f.nodes))


class _NodeCheck:
    """Compares every interior node the rebuild completes with the stored one, level by level."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._levels: dict[int, Iterator[tuple[int, bytes]]] = {}

    def check(self, level: int, index: int, digest: bytes) -> None:
        it = self._levels.get(level)
        if it is None:
            it = self._levels[level] = iter(self._store.scan_nodes(level))
        stored = next(it, None)
        if stored is None or stored[0] != index or bytes(stored[1]) != digest:
            raise _NodeMismatch(level, index)


class _NodeMismatch(Exception):
    def __init__(self, level: int, index: int) -> None:
        super().__init__(f"stored tree node (level {level}, index {index}) is wrong")
        self.first_leaf = index << level


def verify(
    store: Store,
    verifier: NoteVerifier | None,
    outside: Checkpoint | None = None,
    progress: Progress | None = None,
    *,
    all_signatures: bool = False,
) -> Report:
    report = Report()
    signed = _signed_checkpoints(store, verifier, report, all_signatures)
    if outside is not None:
        signed.setdefault(outside.size, outside.root)
        if signed[outside.size] != outside.root:
            report.problem = (
                f"the store's checkpoint for size {outside.size} differs from the one given"
            )
    total = store.size()
    try:
        frontier = _fast_pass(store, signed, total, progress, report)
    except _Bad as bad:
        report.first_bad_seq, report.problem = bad.seq, bad.problem
        return report
    report.size, report.root = frontier.size, frontier.root()
    wanted = max(signed, default=0)
    if wanted > frontier.size:
        report.first_bad_seq = frontier.size
        report.problem = (
            f"a signed checkpoint covers {wanted} entries but the store holds {frontier.size}:"
            f" entries from seq {frontier.size} are missing"
        )
    elif frontier.size > wanted:
        report.first_bad_seq = wanted
        report.problem = f"entries from seq {wanted} are not covered by any signed checkpoint"
    return report


def _signed_checkpoints(
    store: Store, verifier: NoteVerifier | None, report: Report, all_signatures: bool
) -> dict[int, bytes]:
    """The stored checkpoint roots the rebuilt tree is compared with.

    The latest signed root covers the whole tree, so it alone decides integrity, and the hash
    chain names the first bad entry. With one checkpoint per batch, a quiet clinic has about
    one per entry: by default the latest and one per MILESTONE entries are compared and only
    the latest signature is checked (~0.1 ms each); `all_signatures` compares and checks all.
    """
    if verifier is None:
        report.warnings.append("no verifier key: stored checkpoint signatures were not checked")
    stored = {cp.tree_size: cp for cp in store.checkpoints()}
    sizes = sorted(stored) if all_signatures else _milestones(sorted(stored))
    latest = max(stored, default=None)
    roots: dict[int, bytes] = {}
    for size in sizes:
        cp = stored[size]
        try:
            body = parse_note(cp.note)
        except ValueError as exc:
            report.problem = f"checkpoint for size {size}: {exc}"
            continue
        if body.size != size or body.root != cp.root:
            report.problem = f"checkpoint row for size {size} differs from its note"
            continue
        if verifier is not None and (all_signatures or size == latest):
            if not _signed(verifier, cp.note, report):
                continue
            report.signatures += 1
        roots[size] = cp.root
    report.checkpoints = len(roots)
    return roots


def _milestones(sizes: list[int], every: int = MILESTONE) -> list[int]:
    """The first size in each stretch of `every` entries, and the latest."""
    kept = [s for i, s in enumerate(sizes) if i == 0 or s // every != sizes[i - 1] // every]
    if sizes and kept[-1] != sizes[-1]:
        kept.append(sizes[-1])
    return kept


def _signed(verifier: NoteVerifier, note: str, report: Report) -> bool:
    try:
        verifier.open(note)
    except ValueError as exc:
        report.problem = f"checkpoint signature: {exc}"
        return False
    return True


def _fast_pass(
    store: Store,
    signed: dict[int, bytes],
    total: int,
    progress: Progress | None,
    report: Report,
) -> Frontier:
    frontier = Frontier()
    good = _copy(frontier)  # the tree at the last checkpoint that matched
    nodes = _NodeCheck(store)
    stack = frontier.nodes
    sha256 = hashlib.sha256
    expected = 0
    for seq, leaf, stored_hash in store.scan():
        if seq != expected:
            raise _Bad(expected, f"seq {expected} is missing (next stored seq is {seq})")
        digest = sha256(b"\x00" + leaf).digest()
        if digest != stored_hash:
            raise _Bad(seq, f"entry {seq}: leaf bytes do not hash to the stored leaf_hash")
        stack.append((0, digest))
        index = seq
        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
            level, right = stack.pop()
            left = stack.pop()[1]
            merged = node_hash(left, right)
            index >>= 1
            stack.append((level + 1, merged))
            try:
                nodes.check(level + 1, index, merged)
            except _NodeMismatch as mismatch:  # a leaf re-hashed after the fact, or the node
                raise _localise(store, good, total) or _Bad(
                    mismatch.first_leaf, str(mismatch)
                ) from None
        expected += 1
        frontier.size = expected
        root = signed.get(expected)
        if root is not None:
            if frontier.root() != root:
                raise _localise(store, good, expected) or _Bad(
                    expected - 1, f"the tree of size {expected} does not match its checkpoint"
                )
            good = _copy(frontier)
        if progress is not None and expected % 65536 == 0:
            progress(expected, total)
    if progress is not None:
        progress(expected, total)
    return frontier


def _localise(store: Store, good: Frontier, end: int) -> _Bad | None:
    """Between the last matching checkpoint and `end`: the first entry off the hash chain."""
    frontier = _copy(good)
    for seq, leaf, _stored in store.scan(start=good.size):
        if seq >= end:
            break
        try:
            content = orjson.loads(leaf)
            claimed, prev_root = int(content["seq"]), base64.b64decode(content["prev_root"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return _Bad(seq, f"entry {seq}: the leaf is not a ledger entry")
        if claimed != seq:
            bad = seq - 1 if claimed == seq - 1 else seq
            return _Bad(bad, f"entry {seq} holds the leaf appended as seq {claimed}")
        if prev_root != frontier.root():
            return _Bad(seq - 1, f"entry {seq} was appended after a different entry {seq - 1}")
        list(frontier.append(hashlib.sha256(b"\x00" + leaf).digest()))
    return None
