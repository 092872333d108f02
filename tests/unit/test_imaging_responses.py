"""C-STORE responses packed directly: byte for byte what pynetdicom would send."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from services.imaging.responses import encode_store_response, install, uninstall
from tests import dicom_factory


def stock(primitive: C_STORE) -> bytes:
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))


def response(status: int, message_id: int, sop_class: str, sop_instance: str) -> C_STORE:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = message_id
    rsp.AffectedSOPClassUID = sop_class
    rsp.AffectedSOPInstanceUID = sop_instance
    rsp.Status = status
    return rsp


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xA900, 0xC000, 0xB000])
@pytest.mark.parametrize(
    ("sop_class", "sop_instance"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5.6.7"),  # odd and even lengths
        ("1.2.840.10008.5.1.4.1.1.12.1", "1.2.826.0.1.3680043.8.498.12345678901234567890"),
        ("1.2.840.10008.5.1.4.1.1.88.67", "2.25.123456789012345678901234567890123456789"),
    ],
)
@pytest.mark.parametrize("message_id", [1, 2, 65535])
def test_the_packed_response_equals_pynetdicoms(
    status: int, sop_class: str, sop_instance: str, message_id: int
) -> None:
    primitive = response(status, message_id, sop_class, sop_instance)
    assert encode_store_response(primitive) == stock(primitive)


def test_a_response_with_an_error_comment_is_left_to_pynetdicom() -> None:
    primitive = response(0xC000, 1, "1.2.840.10008.5.1.4.1.1.2", "1.2.3")
    primitive.ErrorComment = "cannot understand"
    assert encode_store_response(primitive) is None


def test_a_real_association_gets_the_packed_statuses(tmp_path: Path) -> None:
    statuses = iter([0x0000, 0xA700, 0xC000])

    def on_store(_event: evt.Event) -> int:
        return next(statuses)

    install()
    try:
        ae = AE(ae_title="PACKED")
        ae.add_supported_context(CTImageStorage)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        server = ae.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )
        try:
            scu = AE(ae_title="SCU")
            scu.add_requested_context(CTImageStorage)
            assoc = scu.associate("127.0.0.1", port, ae_title="PACKED")
            assert assoc.is_established
            try:
                got = [
                    assoc.send_c_store(os.fspath(f)).Status
                    for f in dicom_factory.ct_series(tmp_path, 3)
                ]
            finally:
                assoc.release()
        finally:
            server.shutdown()
    finally:
        uninstall()
    assert got == [0x0000, 0xA700, 0xC000]
