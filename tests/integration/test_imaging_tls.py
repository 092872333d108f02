"""With TLS configured, the listener speaks only TLS: a client with a certificate from the
configured CA stores; a plain association is refused."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pynetdicom import AE

from tests.integration.imaging_listener import Audit, RunningListener, running_listener

pytestmark = pytest.mark.integration


CT_SMALL = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def _cert(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None, ca: bool = False,
) -> x509.Certificate:  # fmt: skip
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )  # fmt: skip
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("proctrail test CA", ca_key, ca=True)
    _write(tmp_path / "ca", ca, ca_key)
    for name in ("server", "modality"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(tmp_path / name, _cert(name, key, ca.subject, ca_key), key)
    return tmp_path


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
