"""With TLS configured, the listener speaks only TLS: a client with a certificate from the
configured CA stores; a plain association is refused."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE

from tests.integration.imaging_listener import Audit, RunningListener, running_listener
from tests.pki import issue

pytestmark = pytest.mark.integration


CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return issue(tmp_path, "server", "modality")


@pytest.fixture
def tls_listener(amqp_url: str, pki: Path, tmp_path: Path) -> Iterator[RunningListener]:
    with running_listener(
        amqp_url, tmp_path / "var",
        PROCTRAIL_DICOM_TLS_CERT=str(pki / "server.crt"),
        PROCTRAIL_DICOM_TLS_KEY=str(pki / "server.key"),
        PROCTRAIL_DICOM_TLS_CA=str(pki / "ca.crt"),
    ) as running:  # fmt: skip
        yield running


def associate(port: int, context: ssl.SSLContext | None) -> object:
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(pydicom.dcmread(CT_SMALL, stop_before_pixels=True).SOPClassUID)
    tls = (context, "localhost") if context else None
    assoc = ae.associate("127.0.0.1", port, ae_title="PROCTRAIL", tls_args=tls)
    transport = getattr(assoc.dul, "socket", None)
    raw = getattr(transport, "socket", None)
    if not assoc.is_established and raw is not None:
        raw.close()  # pynetdicom leaves the socket of a refused TLS handshake open
    return assoc


def test_a_modality_with_a_certificate_stores_over_tls_and_plain_is_refused(
    tls_listener: RunningListener, pki: Path
) -> None:
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.crt"))
    client.load_cert_chain(str(pki / "modality.crt"), str(pki / "modality.key"))
    assoc = associate(tls_listener.port, client)
    assert assoc.is_established  # type: ignore[attr-defined]
    try:
        status = assoc.send_c_store(pydicom.dcmread(CT_SMALL))  # type: ignore[attr-defined]
    finally:
        assoc.release()  # type: ignore[attr-defined]
    assert status.Status == 0x0000

    plain = associate(tls_listener.port, None)
    assert not plain.is_established  # type: ignore[attr-defined]

    logged = Audit(tls_listener.amqp_url).wait_for("imaging.association_logged", 1)
    stored = [e for e in logged if e["payload"]["objects_stored"] == 1]
    assert stored[0]["payload"]["tls"] is True
    assert stored[0]["payload"]["calling_ae"] == "MODALITY1"


def test_a_client_without_a_certificate_from_the_ca_is_refused(
    tls_listener: RunningListener, pki: Path
) -> None:
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.crt"))
    assoc = associate(tls_listener.port, client)  # server-authenticated only, no client cert
    assert not assoc.is_established  # type: ignore[attr-defined]
    assert tls_listener.process.poll() is None
