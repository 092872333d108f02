"""C-STORE responses encoded directly, not through pydicom's general dataset writer.

Every stored object costs pynetdicom one C-STORE-RSP command set: six small elements in
implicit VR little endian (PS3.7 9.3.1.2). pynetdicom builds it as a pydicom Dataset and
encodes it twice (once only to learn the group length). That was about 15 % of the
listener's CPU on small objects. `install()` wraps pynetdicom's DIMSE `send_msg`: a plain
C-STORE response (a status, no error comment or offending element) is packed here with
`struct`, byte for byte what pynetdicom would send (tests/unit/test_imaging_responses.py
compares them), and handed to the DUL as one P-DATA fragment. Everything else, and any
association with an EVT_DIMSE_SENT handler bound, goes the stock way. The listener installs
this through patches.py, which first checks the pynetdicom names it replaces and uses.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

_C_STORE_RSP = 0x8001
_NO_DATA_SET = 0x0101
_US, _UL = struct.Struct("<HHLH"), struct.Struct("<HHLL")
_HEADER = struct.Struct("<HHL")

_stock_send_msg: Callable[..., None] | None = None


def _uid(element: int, value: str) -> bytes:
    data = value.encode("ascii")
    if len(data) % 2:
        data += b"\0"  # UI values are padded with NUL to an even length
    return _HEADER.pack(0x0000, element, len(data)) + data


def encode_store_response(primitive: Any) -> bytes | None:
    """The command set of a plain C-STORE-RSP, or None when it needs pynetdicom's encoder."""
    if type(primitive) is not C_STORE or primitive.MessageIDBeingRespondedTo is None:
        return None
    if primitive.ErrorComment is not None or primitive.OffendingElement is not None:
        return None
    status, sop_class = primitive.Status, primitive.AffectedSOPClassUID
    sop_instance = primitive.AffectedSOPInstanceUID
    if status is None or sop_class is None or sop_instance is None:
        return None
    body = b"".join((
        _uid(0x0002, str(sop_class)),
        _US.pack(0x0000, 0x0100, 2, _C_STORE_RSP),
        _US.pack(0x0000, 0x0120, 2, int(primitive.MessageIDBeingRespondedTo)),
        _US.pack(0x0000, 0x0800, 2, _NO_DATA_SET),
        _US.pack(0x0000, 0x0900, 2, int(status)),
        _uid(0x1000, str(sop_instance)),
    ))  # fmt: skip
    return _UL.pack(0x0000, 0x0000, 4, len(body)) + body


def _send_msg(self: DIMSEServiceProvider, primitive: Any, context_id: int) -> None:
    assert _stock_send_msg is not None
    encoded = encode_store_response(primitive)
    limit = self.maximum_pdu_size
    if (
        encoded is None
        or (limit and len(encoded) + 6 > limit)
        or self.assoc.get_handlers(evt.EVT_DIMSE_SENT)
    ):
        _stock_send_msg(self, primitive, context_id)
        return
    pdata = P_DATA()
    pdata.presentation_data_value_list.append((context_id, b"\x03" + encoded))  # last command
    self.dul.send_pdu(pdata)


def install() -> None:
    """Route plain C-STORE responses through the direct encoder (idempotent)."""
    global _stock_send_msg
    if _stock_send_msg is None:
        _stock_send_msg = DIMSEServiceProvider.send_msg
        DIMSEServiceProvider.send_msg = _send_msg  # type: ignore[method-assign]


def uninstall() -> None:
    global _stock_send_msg
    if _stock_send_msg is not None:
        DIMSEServiceProvider.send_msg = _stock_send_msg  # type: ignore[method-assign]
        _stock_send_msg = None
