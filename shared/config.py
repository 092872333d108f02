"""Settings read from the environment (names and defaults are in the public contract)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

_NO = ("false", "0", "no", "off")

# Each service's Prometheus endpoint, by default (PROCTRAIL_<SERVICE>_METRICS_ADDR; "off" for
# none).
METRICS_ADDRS = {
    "imaging": "127.0.0.1:9461",
    "bedside": "127.0.0.1:9462",
    "harvest": "127.0.0.1:9463",
    "implant": "127.0.0.1:9464",
    "audit": "127.0.0.1:9465",
}


def _addr(value: str, name: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{name} must look like host:port, got {value!r}")
    return host or "127.0.0.1", int(port)


@dataclass(frozen=True)
class Settings:
    amqp_url: str = DEFAULT_AMQP_URL
    data_dir: Path = Path("var")
    database_url: str | None = None
    dicom_addr: tuple[str, int] = ("127.0.0.1", 11112)
    dicom_ae_title: str = "PROCTRAIL"
    dicom_allowed_aets: tuple[str, ...] = ()
    bedside_addr: tuple[str, int] = ("127.0.0.1", 8080)
    audit_addr: tuple[str, int] = ("127.0.0.1", 8081)
    late_after_s: float = 600.0
    delivery_limit: int = 5
    publish_timeout_s: float = 5.0
    log_format: str = field(default="auto")
    log_origin: str = "proctrail/audit"
    vitals_interval_min: float = 5.0  # local policy: 5 or 15 minutes between vitals when sedated
    clock_tick_s: float = 15.0  # how often harvest/implant check the clock-driven alerts
    needle_window_min: float = 10.0  # confirming images must come this near a needle placement
    sae_warning_h: float = 48.0  # sae_report_due this many hours before the reporting deadline
    sample_id_scheme: str = "mod37-2"  # shared/clinical/sample_ids.py
    custody_min_c: float = 2.0  # a custody hand-off outside this range raises an alert
    custody_max_c: float = 25.0
    amqp_declare: bool = True  # False: the broker's definitions own the topology (deploy/)
    amqp_password_file: Path | None = None  # the AMQP password, kept out of the URL
    amqp_tls_ca: Path | None = None  # amqps://: the CA that signed the broker's certificate
    amqp_tls_cert: Path | None = None  # and this client's certificate and key, if it asks
    amqp_tls_key: Path | None = None
    metrics_addrs: dict[str, tuple[str, int] | None] = field(
        default_factory=lambda: {k: _addr(v, k) for k, v in METRICS_ADDRS.items()}
    )

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        allowed = tuple(a.strip() for a in e.get("PROCTRAIL_DICOM_ALLOWED_AETS", "").split(","))
        return cls(
            amqp_url=e.get("PROCTRAIL_AMQP_URL", DEFAULT_AMQP_URL),
            data_dir=Path(e.get("PROCTRAIL_DATA_DIR", "var")),
            database_url=_database_url(e),
            dicom_addr=_addr(
                e.get("PROCTRAIL_DICOM_ADDR", "127.0.0.1:11112"), "PROCTRAIL_DICOM_ADDR"
            ),
            dicom_ae_title=e.get("PROCTRAIL_DICOM_AE_TITLE", "PROCTRAIL"),
            dicom_allowed_aets=tuple(a for a in allowed if a),
            bedside_addr=_addr(
                e.get("PROCTRAIL_BEDSIDE_ADDR", "127.0.0.1:8080"), "PROCTRAIL_BEDSIDE_ADDR"
            ),
            audit_addr=_addr(
                e.get("PROCTRAIL_AUDIT_ADDR", "127.0.0.1:8081"), "PROCTRAIL_AUDIT_ADDR"
            ),
            late_after_s=float(e.get("PROCTRAIL_LATE_AFTER_S", "600")),
            delivery_limit=int(e.get("PROCTRAIL_DELIVERY_LIMIT", "5")),
            publish_timeout_s=float(e.get("PROCTRAIL_PUBLISH_TIMEOUT_S", "5")),
            log_format=e.get("PROCTRAIL_LOG_FORMAT", "auto"),
            log_origin=e.get("PROCTRAIL_LOG_ORIGIN", "proctrail/audit"),
            vitals_interval_min=float(e.get("PROCTRAIL_VITALS_INTERVAL_MIN", "5")),
            clock_tick_s=float(e.get("PROCTRAIL_CLOCK_TICK_S", "15")),
            needle_window_min=float(e.get("PROCTRAIL_NEEDLE_WINDOW_MIN", "10")),
            sae_warning_h=float(e.get("PROCTRAIL_SAE_WARNING_H", "48")),
            sample_id_scheme=e.get("PROCTRAIL_SAMPLE_ID_SCHEME", "mod37-2"),
            custody_min_c=float(e.get("PROCTRAIL_CUSTODY_MIN_C", "2")),
            custody_max_c=float(e.get("PROCTRAIL_CUSTODY_MAX_C", "25")),
            amqp_declare=e.get("PROCTRAIL_AMQP_DECLARE", "true").lower() not in _NO,
            amqp_password_file=_path(e.get("PROCTRAIL_AMQP_PASSWORD_FILE")),
            amqp_tls_ca=_path(e.get("PROCTRAIL_AMQP_TLS_CA")),
            amqp_tls_cert=_path(e.get("PROCTRAIL_AMQP_TLS_CERT")),
            amqp_tls_key=_path(e.get("PROCTRAIL_AMQP_TLS_KEY")),
            metrics_addrs={
                service: _metrics_addr(e, service, default)
                for service, default in METRICS_ADDRS.items()
            },
        )

    def service_dir(self, service: str) -> Path:
        """The part of the data dir one service owns (no service reads another's)."""
        path = self.data_dir / service
        path.mkdir(parents=True, exist_ok=True)
        return path


def _metrics_addr(
    env: os._Environ[str] | dict[str, str], service: str, default: str
) -> tuple[str, int] | None:
    name = f"PROCTRAIL_{service.upper()}_METRICS_ADDR"
    value = env.get(name, default).strip()
    return None if value.lower() in ("off", "") else _addr(value, name)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _database_url(env: os._Environ[str] | dict[str, str]) -> str | None:
    """PROCTRAIL_DATABASE_URL, with the password of PROCTRAIL_DATABASE_PASSWORD_FILE in it."""
    url = env.get("PROCTRAIL_DATABASE_URL") or None
    password_file = env.get("PROCTRAIL_DATABASE_PASSWORD_FILE")
    if url is None or not password_file:
        return url
    from psycopg.conninfo import make_conninfo  # here: most processes never need psycopg

    password = Path(password_file).read_text().strip()
    return make_conninfo(url, password=password)
