"""Settings only the imaging listener reads (the shared ones are in shared.config)."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field


def _pairs(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected AE=ROOM pairs, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _workers(text: str) -> int:
    """A count, or "auto": one per CPU, at most 4."""
    if text.strip().lower() == "auto":
        return max(1, min(os.cpu_count() or 1, 4))
    count = int(text)
    if not 1 <= count <= 64:
        raise ValueError(f"PROCTRAIL_DICOM_WORKERS must be 1..64 or auto, got {text!r}")
    return count


@dataclass(frozen=True)
class ImagingSettings:
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None  # given: callers must present a certificate it signed
    max_associations: int = 20  # across all worker processes
    workers: int = 1  # listener processes sharing the port (pynetdicom keeps each to one core)
    ae_rooms: dict[str, str] = field(default_factory=dict)  # calling AE -> room
    match_window_h: float = 12.0
    dose_threshold_rp_gy: float = 5.0  # reference-point air kerma (SRDL, NCRP 168)
    dose_threshold_dap_gy_m2: float = 0.05  # 500 Gy·cm²
    dose_threshold_dlp_mgy_cm: float = 2000.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ImagingSettings:
        e = dict(os.environ) if env is None else env
        return cls(
            tls_cert=e.get("PROCTRAIL_DICOM_TLS_CERT") or None,
            tls_key=e.get("PROCTRAIL_DICOM_TLS_KEY") or None,
            tls_ca=e.get("PROCTRAIL_DICOM_TLS_CA") or None,
            max_associations=int(e.get("PROCTRAIL_DICOM_MAX_ASSOCIATIONS", "20")),
            workers=_workers(e.get("PROCTRAIL_DICOM_WORKERS", "auto")),
            ae_rooms=_pairs(e.get("PROCTRAIL_DICOM_AE_ROOMS", "")),
            match_window_h=float(e.get("PROCTRAIL_DICOM_MATCH_WINDOW_H", "12")),
            dose_threshold_rp_gy=float(e.get("PROCTRAIL_DOSE_THRESHOLD_RP_GY", "5")),
            dose_threshold_dap_gy_m2=float(e.get("PROCTRAIL_DOSE_THRESHOLD_DAP_GY_M2", "0.05")),
            dose_threshold_dlp_mgy_cm=float(e.get("PROCTRAIL_DOSE_THRESHOLD_DLP_MGY_CM", "2000")),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS when a certificate is configured; then plain associations are refused."""
        if not self.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_ca:
            context.load_verify_locations(self.tls_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context
