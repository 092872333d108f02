"""The reconciliation list: captures no open procedure claimed, which a nurse reconciles on the
tablet with an `imaging.capture_reconciled` posted under the procedure they belong to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.bedside.store import BedsideStore
from shared.auth import Principal
from shared.events import Envelope, FieldError
from shared.http import Problem, invalid

RECONCILED = "imaging.capture_reconciled"


def check_reconciliation(envelope: Envelope, store: BedsideStore) -> None:
    """A capture is reconciled to the procedure the event is posted under, once."""
    payload = envelope.payload
    sop = str(payload["sop_instance_uid"])
    if str(payload["procedure_id"]) != str(envelope.procedure_id):
        problem = "is not the procedure this event is posted under"
        raise invalid([FieldError("payload.procedure_id", problem)])
    if store.unmatched(sop) is None:
        problem = "names no capture on the reconciliation list"
        raise invalid([FieldError("payload.sop_instance_uid", problem)])
    settled = store.reconciled_to(sop)
    if settled is not None:
        raise Problem(
            409,
            "Conflict",
            f"this capture was already reconciled to procedure {settled};"
            " a mistake is put right with record.corrected",
            errors=[FieldError("payload.sop_instance_uid", "already reconciled")],
        )


def remember_reconciliation(
    envelope: Envelope, principal: Principal, at: datetime, store: BedsideStore
) -> None:
    """The capture leaves the waiting list, settled to this procedure by this user."""
    store.reconcile(str(envelope.payload["sop_instance_uid"]), str(envelope.procedure_id),
                    str(envelope.event_id), principal.user, at)  # fmt: skip


def reconciliation_list(settled: str, store: BedsideStore) -> dict[str, Any]:
    """`settled=false` (the default) lists the captures waiting, newest first; `settled=true`
    those already reconciled, with to what, by whom and when."""
    if settled not in ("true", "false"):
        raise invalid([FieldError("settled", "is true or false")])
    return {"captures": store.reconciliation_list(settled=settled == "true")}
