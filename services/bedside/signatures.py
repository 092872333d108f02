"""A `record.signed` from a tablet: the signer signs in again, and the signature is bound to
exactly the events it signs, as this bedside recorded them (21 CFR 11.200)."""

from __future__ import annotations

from starlette.requests import Request

from services.bedside.store import BedsideStore
from shared.auth import Principal, TokenStore
from shared.events import Envelope, FieldError, signed_content_sha256
from shared.http import Problem, invalid

SIGNING_PASSWORD_HEADER = "Proctrail-Signing-Password"  # noqa: S105 - a header name


def bind_signature(
    envelope: Envelope,
    principal: Principal,
    request: Request,
    tokens: TokenStore,
    store: BedsideStore,
) -> Envelope:
    """Re-authenticate the signer, then bind the signature to exactly what was signed."""
    payload = envelope.payload
    if payload["signer_id"] != principal.user:
        raise Problem(403, "Forbidden", "a signature is made by the signer, signed in")
    password = request.headers.get(SIGNING_PASSWORD_HEADER, "")
    if not password or not tokens.check_signing_password(principal.user, password):
        raise Problem(
            401,
            "Re-authentication Required",
            f"signing needs the signer's signing password in {SIGNING_PASSWORD_HEADER}",
        )
    digests = {}
    for event_id in payload["event_ids"]:
        seen = store.accepted(event_id)
        if seen is None or not seen.confirmed:
            raise invalid(
                [FieldError("payload.event_ids", f"event {event_id} was not recorded here")]
            )
        digests[event_id] = seen.digest
    bound = signed_content_sha256(digests)
    if payload.get("signed_sha256") not in (None, bound):
        raise invalid(
            [FieldError("payload.signed_sha256", "does not match the events as recorded")]
        )
    return envelope.model_copy(update={"payload": {**payload, "signed_sha256": bound}})
