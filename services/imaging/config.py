"""Settings only the imaging listener reads (the shared ones are in shared.config).

Its variables are PROCTRAIL_DICOM_<FIELD>, and PROCTRAIL_DOSE_THRESHOLD_* for the dose alerts;
shared.config.READ_ELSEWHERE lists them, so that every other service knows them too.
"""

from __future__ import annotations

import os
import ssl
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.environment import EnvSettings, OptionalText, Positive


def _pairs(value: object) -> object:
    """AE=ROOM pairs, comma separated."""
    if not isinstance(value, str):
        return value
    out = {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        key, sep, room = item.partition("=")
        if not sep or not key.strip() or not room.strip():
            raise ValueError("AE=ROOM pairs, comma separated, e.g. CARM1=OR-2,US1=OR-2")
        out[key.strip()] = room.strip()
    return out


def _auto_workers() -> int:
    """One listener process per CPU, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4))


def _workers(value: object) -> object:
    """A count, or "auto"."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return _auto_workers()
    try:
        count = int(str(value).strip())
    except ValueError:
        count = 0
    if not 1 <= count <= 64:
        raise ValueError("a count of 1 to 64, or auto (one per CPU, at most 4)")
    return count


Rooms = Annotated[dict[str, str], NoDecode, BeforeValidator(_pairs)]
Workers = Annotated[int, BeforeValidator(_workers)]


class ImagingSettings(EnvSettings):
    model_config = SettingsConfigDict(env_prefix="PROCTRAIL_DICOM_")

    tls_cert: OptionalText = None
    tls_key: OptionalText = None
    tls_ca: OptionalText = None  # given: callers must present a certificate it signed
    max_associations: Annotated[int, Field(ge=1)] = 20  # across all worker processes
    # Listener processes sharing the port (pynetdicom keeps each to one core).
    workers: Workers = Field(default_factory=_auto_workers)
    ae_rooms: Rooms = Field(default_factory=dict)  # calling AE -> room
    match_window_h: Positive = 12.0
    # Cumulative per patient: reference-point air kerma (SRDL, NCRP 168), dose-area product
    # (0.05 Gy·m² is 500 Gy·cm²), dose-length product.
    dose_threshold_rp_gy: Positive = Field(
        default=5.0, validation_alias="PROCTRAIL_DOSE_THRESHOLD_RP_GY"
    )
    dose_threshold_dap_gy_m2: Positive = Field(
        default=0.05, validation_alias="PROCTRAIL_DOSE_THRESHOLD_DAP_GY_M2"
    )
    dose_threshold_dlp_mgy_cm: Positive = Field(
        default=2000.0, validation_alias="PROCTRAIL_DOSE_THRESHOLD_DLP_MGY_CM"
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
