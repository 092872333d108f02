"""The ledger as a FHIR R4 Bundle: one AuditEvent per entry, one Provenance per signature.

Built with the `fhir.resources` models of the R4B line (FHIR 4.3, the current R4 release; its
AuditEvent, Provenance, Bundle and Binary are those of R4 4.0.1). The bundle is a
`collection` whose `identifier` names the checkpoint it was cut against
(`<tree_size>:<base64 root>`) and whose `timestamp` is that checkpoint's time, so the same
ledger and checkpoint always export to the same bytes. Two Binary entries come first: the
signed checkpoint note (C2SP signed-note form) and the verifier key, tagged `checkpoint` and
`verifier-key` in meta.tag (system EXPORT_PART_SYSTEM).

Each entry becomes an AuditEvent (fullUrl `urn:uuid:<event_id>`):
- type: the event type's family (`sedation`), subtype: the full type
  (`sedation.drug_administered`), both codes of EVENT_TYPE_SYSTEM;
- action: R for `audit.queried`/`audit.exported`, U for `record.corrected`, E for
  `alert.raised`, C for every other recorded fact;
- period: the clinical time (occurred_at); recorded: recorded_at (server time), or the time
  the service stamped it when a rejected event carries none;
- outcome: 0 accepted, 4 rejected with outcomeDesc the reason;
- agent: the actor (who.identifier = actor id, role as text), then the authenticated user who
  entered it (`entered_by`, type ENT) when present; the requestor is whoever's token carried
  the event in (entered_by if present, else the actor);
- source: site = the service that stamped the entry; observer = the source (kind, id);
- entity: the procedure (what.identifier = procedure_id), the event itself (details: seq,
  disposition, leaf_hash and leaf as base64Binary, payload as sorted-key JSON text, and
  `late` when it was entered late) and, for a correction or a signature, the events it
  points at. With the leaf an inspector can recompute leaf_hash = SHA-256(0x00 || leaf) and
  check it against the checkpoint with the inclusion-proof endpoint.

Each accepted `record.signed` entry also becomes a Provenance whose targets are the signed
events' AuditEvents (a `urn:uuid:` reference when that event is in the bundle, its identifier
otherwise) and whose agent is the signer (provenance-participant-type author, verifier or
attester; role as text when the signer's own token carried it in), with one Signature whose
type is the ASTM E1762 code for its meaning:
- authored -> 1.2.840.10065.1.12.1.1 Author's Signature;
- reviewed -> 1.2.840.10065.1.12.1.13 Review Signature;
- approved -> 1.2.840.10065.1.12.1.6 Validation Signature ("validating a document for
  inclusion in the record", as an attending physician does), rather than .5 Verification,
  which is a countersignature of content someone else recorded.
Signature.data is the base64 of the signing entry's leaf (sigFormat application/json): what the
ledger hashed, and so what the checkpoint vouches for (its payload carries `signed_sha256`,
the hash binding it to exactly the events signed). Two extensions say what the procedure
timeline (`services.audit.timeline`) says of it, judged on the exported entries:
SIGNATURE_VALID_URL (valueBoolean: false once an event it signed was corrected after it, or
its binding does not match) and SIGNATURE_BINDING_URL (valueCode intact, mismatch or
unchecked). They are absent when none of the signed events is in the export.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import orjson
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta

from services.audit.export_fhir._auditevent import audit_event
from services.audit.export_fhir._codes import (
    CHECKPOINT_SYSTEM,
    EVENT_TYPE_SYSTEM,
    EXPORT_NAMESPACE,
    EXPORT_PART_SYSTEM,
    SIGNATURE_BINDING_URL,
    SIGNATURE_VALID_URL,
)
from services.audit.export_fhir._json import plain
from services.audit.export_fhir._provenance import provenance, signatures, signs
from services.audit.export_fhir._values import b64, base64_binary, instant
from services.audit.store import Entry, StoredCheckpoint

__all__ = [
    "CHECKPOINT_SYSTEM",
    "EVENT_TYPE_SYSTEM",
    "EXPORT_PART_SYSTEM",
    "SIGNATURE_BINDING_URL",
    "SIGNATURE_VALID_URL",
    "fhir_bundle",
    "parse_bundle",
    "plain",
]


def fhir_bundle(entries: Iterable[Entry], checkpoint: StoredCheckpoint, verifier_key: str) -> bytes:
    """JSON bytes of a FHIR R4 `collection` Bundle of `entries`, cut against `checkpoint`."""
    listed = list(entries)
    contents = [(entry, entry.content()) for entry in listed]
    in_bundle = {str(content["event"].get("event_id")) for _, content in contents}
    judged = signatures(listed) if any(signs(c) for _, c in contents) else {}
    root = b64(checkpoint.root)
    cut = f"{checkpoint.tree_size}:{root}"
    bundle_entries = [
        BundleEntry(
            fullUrl=f"urn:uuid:{uuid.uuid5(EXPORT_NAMESPACE, f'{part}:{cut}')}",
            resource=_part(part, text),
        )
        for part, text in (("checkpoint", checkpoint.note), ("verifier-key", verifier_key))
    ]
    for entry, content in contents:
        event_id = str(content["event"].get("event_id"))
        bundle_entries.append(
            BundleEntry(
                fullUrl=f"urn:uuid:{event_id}", resource=audit_event(entry, content, in_bundle)
            )
        )
        if signs(content):
            bundle_entries.append(
                BundleEntry(
                    fullUrl=f"urn:uuid:{uuid.uuid5(EXPORT_NAMESPACE, event_id)}",
                    resource=provenance(entry, content, in_bundle, judged.get(event_id)),
                )
            )
    bundle = Bundle(
        type="collection",
        identifier=Identifier(system=CHECKPOINT_SYSTEM, value=cut),
        timestamp=instant(checkpoint.created_at),
        entry=bundle_entries,
    )
    return orjson.dumps(plain(bundle))


def _part(name: str, text: str) -> Binary:
    return Binary(
        meta=Meta(tag=[Coding(system=EXPORT_PART_SYSTEM, code=name)]),
        contentType="text/plain",
        data=base64_binary(text.encode()),
    )


def parse_bundle(data: bytes) -> Bundle:
    """Parse exported bytes back into the library's Bundle model (validating every resource)."""
    return Bundle.model_validate_json(data)
