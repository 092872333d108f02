"""The DICOM listener: C-ECHO and C-STORE SCP for every storage SOP class and transfer syntax.

For each C-STORE, pynetdicom streams the object to disk as it arrives (never whole in memory).
The object is checked whole (validate.py), fsynced and renamed under its SOP Instance UID,
and its events go to the durable outbox in the same step; only then is Success answered.
Anything that fails before that answers a failure status and leaves nothing behind. Every
association, accepted or rejected, becomes an access event in the ledger.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydicom import config as pydicom_config
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    VerificationPresentationContexts,
    _config,
    evt,
)
from pynetdicom.events import EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer

from services.imaging import patches
from services.imaging.announce import Announcer
from services.imaging.config import ImagingSettings
from services.imaging.dose import dose_report
from services.imaging.extract import CAPTURE_TAGS, capture_fields, header_values
from services.imaging.files import StoredObject, file_stem
from services.imaging.load import LoadBoard
from services.imaging.relay import Relay
from services.imaging.spool import Spool
from services.imaging.store import ImagingStore
from services.imaging.validate import Malformed, read_whole
from shared.config import Settings
from shared.events import parse_event, utcnow
from shared.metrics import DICOM_ASSOCIATIONS, DICOM_BYTES, EVENTS_IN

log = structlog.get_logger("imaging")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DATASET_MISMATCH = 0xA900  # the dataset does not match the SOP class / instance of the request
CANNOT_UNDERSTAND = 0xC000


@dataclass
class _Tally:
    stored: int = 0
    refused: int = 0


class _SharedSocketServer(ThreadedAssociationServer):
    """pynetdicom's server on an inherited, already listening socket.

    Every worker process waits on the same socket; the kernel gives each new connection to one
    of them, and a worker that loses the race just goes back to waiting (the socket is
    non-blocking). A worker serving more connections than a sibling lets a new one wait a
    moment for that sibling (at most DEFER_S), so four modalities spread two and two rather
    than three and one. Closing only closes this process's descriptor: a shutdown() here
    would stop the socket for the other workers too.
    """

    DEFER_S = 0.02

    def __init__(self, *args: Any, listen_fd: int, board: LoadBoard | None, **kwargs: Any) -> None:
        self._listen_fd = listen_fd
        self._board = board
        self._deferring_since: float | None = None
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        if self.socket is not None:
            self.socket.close()  # the one socketserver made; ours is inherited
        self.socket = socket.socket(fileno=self._listen_fd)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        pass  # the parent listens

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        if self._board is not None and self._board.busier_than_a_sibling():
            now = time.monotonic()
            self._deferring_since = self._deferring_since or now
            if now - self._deferring_since < self.DEFER_S:
                time.sleep(0.002)  # the connection stays queued for a less busy sibling
                raise OSError("left for a less busy worker")
        self._deferring_since = None
        return super().get_request()

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._board is not None:
            self._board.add(+1)
        try:
            super().process_request(request, client_address)
        except BaseException:
            if self._board is not None:
                self._board.add(-1)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            if self._board is not None:
                self._board.add(-1)

    def server_close(self) -> None:
        if self.socket is not None:
            self.socket.close()


class Listener:
    def __init__(
        self,
        settings: Settings,
        imaging: ImagingSettings,
        store: ImagingStore,
        relay: Relay,
    ) -> None:
        self.settings = settings
        self.imaging = imaging
        self.store = store
        self.relay = relay
        self.announcer = Announcer(store, imaging)
        self.spool = Spool(store.incoming, worker=store.worker)
        self._tallies: dict[int, _Tally] = {}  # per association (each has its own thread)

    def build_ae(self) -> AE:
        # pynetdicom's documented options (its `_config` module) and pydicom's settings; the
        # patches of pynetdicom's private names are all applied, or none (patches.py).
        _config.STORE_RECV_CHUNKED_DATASET = True
        patches.apply(self.spool)
        # The listener checks objects itself (validate.py); pydicom's per-value checks of
        # every command set and header it touches cost ~10 % of a small C-STORE.
        pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
        pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
        # pynetdicom's "standard" handlers format a debug dump of every PDU and DIMSE message,
        # logged or not; the listener logs each object and association itself.
        _config.LOG_HANDLER_LEVEL = "none"
        tempfile.tempdir = str(self.store.incoming)  # pynetdicom streams objects here
        ae = AE(ae_title=self.settings.dicom_ae_title)
        ae.maximum_pdu_size = 0
        workers = max(1, self.imaging.workers)
        ae.maximum_associations = -(-self.imaging.max_associations // workers)  # per process
        ae.require_called_aet = True
        if self.settings.dicom_allowed_aets:
            ae.require_calling_aet = list(self.settings.dicom_allowed_aets)
        else:
            log.warning("no PROCTRAIL_DICOM_ALLOWED_AETS: any calling AE title is accepted")
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        for context in VerificationPresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax)
        return ae

    def serve(
        self, addr: tuple[str, int], listen_fd: int | None = None, board: LoadBoard | None = None
    ) -> Any:
        """Start answering in a background thread: on our own socket, or on one a parent
        process bound and shares with its other workers (`listen_fd`, `board`)."""
        ae = self.build_ae()
        handlers, tls = self.handlers(), self.imaging.ssl_context()
        if listen_fd is None:
            return ae.start_server(addr, block=False, evt_handlers=handlers, ssl_context=tls)
        server = ae.make_server(
            addr, evt_handlers=handlers, ssl_context=tls, server_class=_SharedSocketServer,
            listen_fd=listen_fd, board=board,
        )  # fmt: skip
        ae._servers.append(server)  # as start_server does, so server.shutdown() finds it
        threading.Thread(target=server.serve_forever, name="dicom-acceptor", daemon=True).start()
        return server

    def close(self) -> None:
        self.spool.stop()

    def handlers(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_ACCEPTED, self.on_accepted),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_RELEASED, self.on_ended),
            (evt.EVT_ABORTED, self.on_ended),
        ]

    def on_echo(self, event: Any) -> int:
        log.info("C-ECHO", calling_ae=str(event.assoc.requestor.ae_title).strip())
        return SUCCESS

    # --- C-STORE -----------------------------------------------------------------------------

    def on_store(self, event: Any) -> int:
        structlog.contextvars.clear_contextvars()
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        received = Path(event.dataset_path)
        try:
            status = self._store(event, calling_ae, received)
        finally:
            received.unlink(missing_ok=True)  # kept objects were moved; refused ones go
        tally = self._tallies.setdefault(id(event.assoc), _Tally())
        if status == SUCCESS:
            tally.stored += 1
        else:
            tally.refused += 1
        EVENTS_IN.labels("dicom", "stored" if status == SUCCESS else f"refused_{status:04x}").inc()
        return status

    def _store(self, event: Any, calling_ae: str, received: Path) -> int:
        with contextlib.suppress(OSError):
            DICOM_BYTES.inc(received.stat().st_size)
        try:
            got = read_whole(received, CAPTURE_TAGS)
            fields = capture_fields(header_values(got.dataset))
            dose = dose_report(got.dataset)
        except (Malformed, AttributeError, ValueError, KeyError, TypeError, RecursionError) as exc:
            log.error("C-STORE refused: not a whole object", calling_ae=calling_ae, error=str(exc))
            return CANNOT_UNDERSTAND
        sop = fields["sop_instance_uid"]
        if str(event.request.AffectedSOPInstanceUID) != sop:
            log.error("C-STORE refused: the dataset is another instance than the request",
                      calling_ae=calling_ae, sop_instance_uid=sop)  # fmt: skip
            return DATASET_MISMATCH
        if file_stem(sop) != sop:
            log.warning("SOP Instance UID breaks the DICOM UID rules; kept under a digest",
                        sop_instance_uid=sop, calling_ae=calling_ae)  # fmt: skip
        stored: StoredObject | None = None
        try:
            stored = self.store.keep(received, sop, got.sha256, got.size_bytes)
            said = self.announcer.announce(fields, calling_ae, stored, dose)
            self.store.commit(
                stored,
                sop,
                said.messages,
                unmatched=said.match is None,
                dose=said.dose,
                on_dose=lambda before, after: self.announcer.dose_alerts(said, before, after),
            )
        except (OSError, sqlite3.Error, ValueError) as exc:
            if stored is not None:
                self.store.forget(stored)
            log.error("C-STORE refused: cannot keep the object durably", error=str(exc),
                      sop_instance_uid=sop, calling_ae=calling_ae)  # fmt: skip
            return OUT_OF_RESOURCES
        self.relay.wake()
        structlog.contextvars.bind_contextvars(
            event_id=said.messages[0].message_id,
            procedure_id=said.match.procedure_id if said.match else None,
        )
        log.info("C-STORE stored", sop_instance_uid=sop, modality=fields["modality"],
                 worker=self.store.worker, sha256=stored.sha256, size_bytes=stored.size_bytes,
                 calling_ae=calling_ae,
                 matched_by=said.matched_by, resend=stored.already_had,
                 uid_conflict=stored.conflicts_with is not None)  # fmt: skip
        return SUCCESS

    # --- the access log ----------------------------------------------------------------------

    def on_accepted(self, event: Any) -> None:
        self._tallies[id(event.assoc)] = _Tally()

    def on_rejected(self, event: Any) -> None:
        self._log_association(event.assoc, "rejected", _Tally(), "association rejected")

    def on_ended(self, event: Any) -> None:
        outcome = "released" if event.event is evt.EVT_RELEASED else "aborted"
        tally = self._tallies.pop(id(event.assoc), _Tally())
        self._log_association(event.assoc, outcome, tally, None)

    def _log_association(self, assoc: Any, outcome: str, tally: _Tally, reason: str | None) -> None:
        DICOM_ASSOCIATIONS.labels(outcome).inc()
        requestor = assoc.requestor
        now = utcnow()
        payload: dict[str, Any] = {
            "calling_ae": str(requestor.ae_title).strip() or "(none)",
            "called_ae": str(assoc.acceptor.ae_title).strip() or "(none)",
            "peer_address": str(requestor.address or "unknown"),
            "peer_port": int(requestor.port or 0),
            "outcome": outcome,
            "tls": self.imaging.tls_cert is not None,
            "objects_stored": tally.stored,
            "objects_refused": tally.refused,
        }
        if reason:
            payload["reason"] = reason
        access = parse_event(
            {
                "event_id": str(uuid.uuid4()),
                "type": "imaging.association_logged",
                "schema": 1,
                "occurred_at": now,
                "recorded_at": now,
                "actor": {"id": payload["calling_ae"], "role": "device"},
                "source": {"kind": "dicom", "id": payload["calling_ae"]},
                "payload": payload,
            }
        )
        self.store.add_to_outbox([self.announcer.to_ledger(access, now)])
        self.relay.wake()
        log.info("association", **payload)
