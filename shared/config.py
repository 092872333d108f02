"""Settings read from the environment (names and defaults are in the public contract).

`Settings.from_env()` looks at every PROCTRAIL_* variable: a value that does not fit, or a
variable no part of proctrail reads (a typo), is a `SettingsError` whose message is one line
naming the variable. `KNOWN` is every variable there is: Settings' own, and `READ_ELSEWHERE`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from shared.environment import (
    PREFIX,
    EnvSettings,
    NonNegative,
    OptionalPath,
    OptionalText,
    Positive,
    SettingsError,
)

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _address(value: object) -> object:
    """host:port (an empty host is 127.0.0.1)."""
    if not isinstance(value, str):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("host:port, e.g. 127.0.0.1:8080")
    return host or "127.0.0.1", int(port)


def _address_or_off(value: object) -> object:
    if not isinstance(value, str):
        return value
    if value.strip().lower() in ("off", ""):
        return None
    try:
        return _address(value.strip())
    except ValueError:
        raise ValueError("host:port, e.g. 127.0.0.1:9465, or off") from None


def _names(value: object) -> object:
    """Comma separated, blanks dropped."""
    if not isinstance(value, str):
        return value
    return tuple(name for name in (part.strip() for part in value.split(",")) if name)


def _readable(path: Path | None) -> Path | None:
    if path is not None:
        try:
            path.open("rb").close()
        except OSError as exc:
            raise ValueError(f"a file this process can read ({exc.strerror})") from None
    return path


Address = Annotated[tuple[str, int], NoDecode, BeforeValidator(_address)]
MetricsAddress = Annotated[tuple[str, int] | None, NoDecode, BeforeValidator(_address_or_off)]
Names = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_names)]
ReadablePath = Annotated[OptionalPath, AfterValidator(_readable)]


class Settings(EnvSettings):
    """The settings every service shares: PROCTRAIL_<FIELD> each (PROCTRAIL_AMQP_URL, ...)."""

    amqp_url: str = DEFAULT_AMQP_URL
    data_dir: Path = Path("var")
    database_password_file: ReadablePath = None  # its password goes into database_url
    database_url: OptionalText = None  # unset or empty: SQLite files under the data dir
    dicom_addr: Address = ("127.0.0.1", 11112)
    dicom_ae_title: str = "PROCTRAIL"
    dicom_allowed_aets: Names = ()  # none: any calling AE title (a warning at start-up)
    bedside_addr: Address = ("127.0.0.1", 8080)
    audit_addr: Address = ("127.0.0.1", 8081)
    late_after_s: NonNegative = 600.0
    delivery_limit: Annotated[int, Field(ge=1)] = 5
    publish_timeout_s: Positive = 5.0
    log_format: Literal["auto", "json", "console"] = "auto"
    log_origin: str = "proctrail/audit"
    vitals_interval_min: Positive = 5.0  # local policy: 5 or 15 minutes when sedated
    clock_tick_s: Positive = 15.0  # how often harvest/implant check the clock alerts
    needle_window_min: Positive = 10.0  # confirming images this near a placement
    sae_warning_h: NonNegative = 48.0  # sae_report_due this long before the deadline
    sample_id_scheme: str = "mod37-2"  # services/harvest/sample_ids.py
    custody_min_c: float = 2.0  # a custody hand-off outside this range raises an alert
    custody_max_c: float = 25.0
    amqp_declare: bool = True  # False: the broker's definitions own the topology (deploy/)
    amqp_password_file: OptionalPath = None  # the AMQP password, kept out of the URL
    amqp_tls_ca: OptionalPath = None  # amqps://: the CA that signed the broker's certificate
    amqp_tls_cert: OptionalPath = None  # and this client's certificate and key, if it asks
    amqp_tls_key: OptionalPath = None
    # Each service's Prometheus endpoint (GET /metrics), or None for "off".
    imaging_metrics_addr: MetricsAddress = ("127.0.0.1", 9461)
    bedside_metrics_addr: MetricsAddress = ("127.0.0.1", 9462)
    harvest_metrics_addr: MetricsAddress = ("127.0.0.1", 9463)
    implant_metrics_addr: MetricsAddress = ("127.0.0.1", 9464)
    audit_metrics_addr: MetricsAddress = ("127.0.0.1", 9465)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings `env` (default: os.environ) gives; SettingsError for a value that does
        not fit or a PROCTRAIL_* variable that nothing reads, all of them in one line."""
        given = os.environ if env is None else env
        problems = [_unknown(name) for name in sorted(given) if _is_unknown(name)]
        try:
            settings = super().from_env(given)
        except SettingsError as exc:
            problems.append(str(exc))
        if problems:
            raise SettingsError("; ".join(problems))
        return settings

    @property
    def metrics_addrs(self) -> dict[str, tuple[str, int] | None]:
        """Each service's metrics endpoint, by service name."""
        return {
            "imaging": self.imaging_metrics_addr,
            "bedside": self.bedside_metrics_addr,
            "harvest": self.harvest_metrics_addr,
            "implant": self.implant_metrics_addr,
            "audit": self.audit_metrics_addr,
        }

    @field_validator("database_url")
    @classmethod
    def _with_password(cls, url: str | None, info: ValidationInfo) -> str | None:
        """The URL, with the password of PROCTRAIL_DATABASE_PASSWORD_FILE in it."""
        password_file = info.data.get("database_password_file")
        if url is None or password_file is None:
            return url
        # Here: most processes never need psycopg (the imaging parent stays small).
        from psycopg import Error
        from psycopg.conninfo import make_conninfo

        try:
            return make_conninfo(url, password=password_file.read_text().strip())
        except Error:
            raise ValueError("a PostgreSQL URL, e.g. postgresql://user@host/dbname") from None

    def service_dir(self, service: str) -> Path:
        """The part of the data dir one service owns (no service reads another's)."""
        path = self.data_dir / service
        path.mkdir(parents=True, exist_ok=True)
        return path


# Every PROCTRAIL_* variable read by something other than Settings, and what reads it.
READ_ELSEWHERE: dict[str, str] = {
    # services/imaging/config.py (ImagingSettings): only the imaging listener reads these.
    "PROCTRAIL_DICOM_TLS_CERT": "imaging: the listener's TLS certificate",
    "PROCTRAIL_DICOM_TLS_KEY": "imaging: its key",
    "PROCTRAIL_DICOM_TLS_CA": "imaging: the CA callers' certificates must be signed by",
    "PROCTRAIL_DICOM_MAX_ASSOCIATIONS": "imaging: associations at once, over all workers",
    "PROCTRAIL_DICOM_WORKERS": "imaging: listener processes sharing the port",
    "PROCTRAIL_DICOM_AE_ROOMS": "imaging: calling AE -> room",
    "PROCTRAIL_DICOM_MATCH_WINDOW_H": "imaging: hours around a scheduled start",
    "PROCTRAIL_DOSE_THRESHOLD_RP_GY": "imaging: cumulative reference-point air kerma alert",
    "PROCTRAIL_DOSE_THRESHOLD_DAP_GY_M2": "imaging: cumulative dose-area product alert",
    "PROCTRAIL_DOSE_THRESHOLD_DLP_MGY_CM": "imaging: cumulative dose-length product alert",
    # services/audit/store_postgres.py: the role the audit service works as in PostgreSQL.
    "PROCTRAIL_DATABASE_APP_ROLE": "audit: the app role (default <owner>_app)",
    "PROCTRAIL_DATABASE_APP_PASSWORD": "audit: the app role's password",
    "PROCTRAIL_DATABASE_APP_PASSWORD_FILE": "audit: the app role's password, from a file",
    # deploy/make-secrets
    "PROCTRAIL_BIN": "deploy/make-secrets: the proctrail command it runs",
    "PROCTRAIL_DICOM_HOSTNAMES": "deploy/make-secrets: more names for imaging's certificate",
    # Tests only: the long forms of the test suite, and where the tests find or put things.
    "PROCTRAIL_FUZZ_PER_KIND": "tests only: DICOM mutants per kind (test_dicom_fuzz.py)",
    "PROCTRAIL_RELIABILITY_EVENTS": "tests only: events the reliability suite sends",
    "PROCTRAIL_RELIABILITY_OBJECTS": "tests only: DICOM objects the reliability suite sends",
    "PROCTRAIL_SCHEMATHESIS_EXAMPLES": "tests only: requests per operation (test_openapi_fuzz)",
    "PROCTRAIL_SOAK_S": "tests only: how long the soak test holds the clinic's peak rates",
    "PROCTRAIL_TEST_ARTIFACTS": "tests only: where the browser tests leave screenshots",
    "PROCTRAIL_TEST_MISFIT_PATCH": "tests only: the pynetdicom patch a test makes misfit",
    "PROCTRAIL_TEST_POSTGRES_URL": "tests only: a PostgreSQL superuser's URL",
}

KNOWN = frozenset(Settings.variables().values()) | frozenset(READ_ELSEWHERE)


def _is_unknown(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(PREFIX) and upper not in KNOWN


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name.upper(), KNOWN, n=1, cutoff=0.8)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{name} is unknown to proctrail{hint}"
