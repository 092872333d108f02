"""An outside verifier checks entries with nothing but the audit endpoints and the public key."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.audit import merkle
from services.audit.checkpoint import RETIRED_KEYS_FILE, Checkpoint, Keyring, Signer, Verifier
from services.audit.ledger import Ledger
from shared.config import Settings
from shared.events.record import AuditRecord

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]


async def fetch_checkpoint(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[int, bytes]:
    vkey = (await client.get("/v1/audit/public-key", headers=headers)).text
    note = await client.get("/v1/audit/checkpoint", headers=headers)
    assert note.headers["content-type"].startswith("text/plain")
    checkpoint = Verifier.from_vkey(vkey).open(note.text)
    return checkpoint.size, checkpoint.root


async def test_every_entry_is_proven_included_in_the_signed_tree(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    for _ in range(4):
        ledger.append([record() for _ in range(5)])
    headers = bearer("compliance")
    size, root = await fetch_checkpoint(audit_client, headers)
    assert size == 20
    listed = (await audit_client.get("/v1/audit/entries", headers=headers)).json()["entries"]
    for entry in listed:
        r = await audit_client.get(
            "/v1/audit/proofs/inclusion",
            params={"seq": entry["seq"], "tree_size": size},
            headers=headers,
        )
        body = r.json()
        proof = [base64.b64decode(h) for h in body["hashes"]]
        leaf = base64.b64decode(entry["leaf"])
        assert body["leaf_index"] == entry["seq"]
        assert merkle.verify_inclusion(merkle.leaf_hash(leaf), entry["seq"], size, proof, root)
        assert not merkle.verify_inclusion(
            merkle.leaf_hash(leaf + b" "), entry["seq"], size, proof, root
        )


async def test_a_kept_checkpoint_is_proven_a_prefix_of_todays_log(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    headers = bearer("compliance")
    ledger.append([record() for _ in range(7)])
    old_size, old_root = await fetch_checkpoint(audit_client, headers)
    ledger.append([record() for _ in range(6)])
    new_size, new_root = await fetch_checkpoint(audit_client, headers)
    r = await audit_client.get(
        "/v1/audit/proofs/consistency", params={"from": old_size, "to": new_size}, headers=headers
    )
    proof = [base64.b64decode(h) for h in r.json()["hashes"]]
    assert (old_size, new_size) == (7, 13)
    assert merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
    assert not merkle.verify_consistency(old_size, new_size, new_root, new_root, proof)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/audit/proofs/inclusion", {"seq": 3, "tree_size": 99}, "tree_size"),
        ("/v1/audit/proofs/inclusion", {"seq": 5, "tree_size": 5}, "seq"),
        ("/v1/audit/proofs/inclusion", {"tree_size": 5}, "seq"),
        ("/v1/audit/proofs/consistency", {"from": 6, "to": 5}, "from"),
        ("/v1/audit/proofs/consistency", {"from": "x", "to": 5}, "from"),
    ],
)
async def test_impossible_proof_requests_are_refused_naming_the_parameter(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
    path: str,
    params: dict[str, object],
    field: str,
) -> None:
    ledger.append([record() for _ in range(5)])
    r = await audit_client.get(path, params=params, headers=bearer("compliance"))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == [field]


async def test_a_nurse_reads_the_checkpoint_but_not_the_proofs(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    ledger.append([record()])
    nurse = bearer("nurse")
    assert (await audit_client.get("/v1/audit/checkpoint", headers=nurse)).status_code == 200
    proof = await audit_client.get("/v1/audit/proofs/inclusion", params={"seq": 0}, headers=nurse)
    assert proof.status_code == 403
    assert (await audit_client.get("/v1/audit/checkpoint")).status_code == 401


@pytest.fixture
def retired(settings: Settings, tmp_path: Path) -> Signer:
    """A key the log signed with before a rotation (its verifier key kept, as rotate does)."""
    old = Signer.load_or_create(tmp_path / "old.pem", settings.log_origin)
    (settings.service_dir("audit") / RETIRED_KEYS_FILE).write_text(old.verifier.vkey() + "\n")
    return old


async def test_the_public_keys_open_checkpoints_signed_before_a_key_rotation(
    retired: Signer,
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    ledger.append([record()])
    headers = bearer("compliance")
    current = (await audit_client.get("/v1/audit/public-key", headers=headers)).text.strip()
    listed = (await audit_client.get("/v1/audit/public-keys", headers=headers)).text
    old_note = retired.sign(Checkpoint("proctrail/audit", 1, b"\x00" * 32))

    assert listed.splitlines() == [current, retired.verifier.vkey()]
    assert Keyring.from_text(listed).open(old_note).size == 1
    with pytest.raises(ValueError, match="no signature"):
        Verifier.from_vkey(current).open(old_note)
