"""Settings from the environment: the deployment's knobs (deploy/compose.yaml sets them).

A value a service cannot use, or a PROCTRAIL_* variable nothing reads, stops it before it
starts: one line on stderr naming the variable, exit status 78 (EX_CONFIG), no traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg.conninfo
import pytest

from services.imaging.config import ImagingSettings
from shared.config import KNOWN, READ_ELSEWHERE, Settings
from shared.environment import SettingsError

REPO = Path(__file__).resolve().parents[2]
EX_CONFIG = 78

# Typos this file makes on purpose; nothing else in the repository may mention an unknown name.
DELIBERATE_TYPOS = {"PROCTRAIL_CLOCK_TIK_S", "PROCTRAIL_LOG_FROMAT", "PROCTRAIL_NOT_A_SETTING"}
# Strings that look like a variable and are not one.
NOT_VARIABLES = {"PROCTRAIL_TEST"}  # tests/dicom_factory.py: the DICOM implementation version
MENTION = re.compile(rb"\bPROCTRAIL_[A-Z0-9]+(?:_[A-Z0-9]+)*\b")


def test_the_defaults_are_the_contracts() -> None:
    s = Settings.from_env({})
    assert (s.bedside_addr, s.audit_addr, s.dicom_addr) == (
        ("127.0.0.1", 8080), ("127.0.0.1", 8081), ("127.0.0.1", 11112))  # fmt: skip
    assert s.metrics_addrs["audit"] == ("127.0.0.1", 9465)
    assert s.amqp_declare is True
    assert s.database_url is None
    assert s == Settings()  # one default each, whichever way the settings are made


def test_a_metrics_endpoint_can_be_moved_or_switched_off() -> None:
    s = Settings.from_env({"PROCTRAIL_AUDIT_METRICS_ADDR": "0.0.0.0:9000",
                           "PROCTRAIL_IMAGING_METRICS_ADDR": "off"})  # fmt: skip
    assert s.metrics_addrs["audit"] == ("0.0.0.0", 9000)
    assert s.metrics_addrs["imaging"] is None
    assert s.metrics_addrs["harvest"] == ("127.0.0.1", 9463)


def test_passwords_come_from_files_and_the_broker_may_own_the_topology(tmp_path: Path) -> None:
    (tmp_path / "pg").write_text("s3cret w0rd'\n")
    s = Settings.from_env({
        "PROCTRAIL_DATABASE_URL": "postgresql://proctrail_owner@db:5432/proctrail",
        "PROCTRAIL_DATABASE_PASSWORD_FILE": str(tmp_path / "pg"),
        "PROCTRAIL_AMQP_PASSWORD_FILE": str(tmp_path / "amqp"),
        "PROCTRAIL_AMQP_DECLARE": "false",
    })  # fmt: skip
    assert s.database_url is not None
    params = psycopg.conninfo.conninfo_to_dict(s.database_url)
    assert (params["user"], params["host"], params["password"]) == (
        "proctrail_owner", "db", "s3cret w0rd'")  # fmt: skip
    assert s.amqp_password_file == tmp_path / "amqp"
    assert s.amqp_declare is False


def test_lists_and_empty_values_read_as_before() -> None:
    s = Settings.from_env({"PROCTRAIL_DICOM_ALLOWED_AETS": " CARM1, US1,,",
                           "PROCTRAIL_DATABASE_URL": "", "PROCTRAIL_AMQP_TLS_CA": ""})  # fmt: skip
    assert s.dicom_allowed_aets == ("CARM1", "US1")
    assert (s.database_url, s.amqp_tls_ca) == (None, None)
    imaging = ImagingSettings.from_env({"PROCTRAIL_DICOM_AE_ROOMS": "CARM1=OR-2, US1=OR-3",
                                        "PROCTRAIL_DICOM_WORKERS": "3"})  # fmt: skip
    assert (imaging.ae_rooms, imaging.workers) == ({"CARM1": "OR-2", "US1": "OR-3"}, 3)


WRONG = {
    "a number that is not one": (
        {"PROCTRAIL_CLOCK_TICK_S": "abc"},
        "PROCTRAIL_CLOCK_TICK_S must be a number, not 'abc'",
    ),
    "a number out of range": (
        {"PROCTRAIL_CLOCK_TICK_S": "0"},
        "PROCTRAIL_CLOCK_TICK_S must be a number above 0, not '0'",
    ),
    "an address without a port": (
        {"PROCTRAIL_BEDSIDE_ADDR": "bedside.lan"},
        "PROCTRAIL_BEDSIDE_ADDR must be host:port, e.g. 127.0.0.1:8080, not 'bedside.lan'",
    ),
    "a metrics address": (
        {"PROCTRAIL_AUDIT_METRICS_ADDR": "9465x"},
        "PROCTRAIL_AUDIT_METRICS_ADDR must be host:port, e.g. 127.0.0.1:9465, or off, not '9465x'",
    ),
    "a yes or no": (
        {"PROCTRAIL_AMQP_DECLARE": "maybe"},
        "PROCTRAIL_AMQP_DECLARE must be true or false, not 'maybe'",
    ),
    "a choice": (
        {"PROCTRAIL_LOG_FORMAT": "xml"},
        "PROCTRAIL_LOG_FORMAT must be 'auto', 'json' or 'console', not 'xml'",
    ),
    "a count": (
        {"PROCTRAIL_DELIVERY_LIMIT": "five"},
        "PROCTRAIL_DELIVERY_LIMIT must be a whole number, not 'five'",
    ),
    "a typo": (
        {"PROCTRAIL_LOG_FROMAT": "json"},
        "PROCTRAIL_LOG_FROMAT is unknown to proctrail (did you mean PROCTRAIL_LOG_FORMAT?)",
    ),
    "a name like no other": (
        {"PROCTRAIL_NOT_A_SETTING": "1"},
        "PROCTRAIL_NOT_A_SETTING is unknown to proctrail",
    ),
    "two at once": (
        {"PROCTRAIL_NOT_A_SETTING": "1", "PROCTRAIL_CLOCK_TICK_S": "abc"},
        "PROCTRAIL_NOT_A_SETTING is unknown to proctrail;"
        " PROCTRAIL_CLOCK_TICK_S must be a number, not 'abc'",
    ),
}


@pytest.mark.parametrize(("env", "line"), WRONG.values(), ids=WRONG.keys())
def test_a_wrong_setting_is_named_with_what_it_expects(env: dict[str, str], line: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert str(raised.value) == line


def test_a_password_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "PROCTRAIL_DATABASE_URL": "postgresql://owner@db/proctrail",
                "PROCTRAIL_DATABASE_PASSWORD_FILE": str(tmp_path / "absent"),
            }
        )
    assert str(raised.value) == (
        "PROCTRAIL_DATABASE_PASSWORD_FILE must be a file this process can read"
        f" (No such file or directory), not '{tmp_path / 'absent'}'"
    )


def _run(command: list[str], tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`command` as a user would start it: this environment without its PROCTRAIL_* variables,
    plus `settings`, and a broker address where nothing listens (it must never get that far)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCTRAIL_")}
    env.update(PROCTRAIL_DATA_DIR=str(tmp_path / "var"),
               PROCTRAIL_AMQP_URL="amqp://guest:guest@127.0.0.1:1/%2F", **settings)  # fmt: skip
    return subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("service", "settings", "line"),
    [
        ("harvest", {"PROCTRAIL_CLOCK_TICK_S": "abc"},
         "harvest: PROCTRAIL_CLOCK_TICK_S must be a number, not 'abc'"),
        ("implant", {"PROCTRAIL_CLOCK_TIK_S": "5"},
         "implant: PROCTRAIL_CLOCK_TIK_S is unknown to proctrail"
         " (did you mean PROCTRAIL_CLOCK_TICK_S?)"),
        ("imaging", {"PROCTRAIL_DICOM_ADDR": "11112"},
         "imaging: PROCTRAIL_DICOM_ADDR must be host:port, e.g. 127.0.0.1:8080, not '11112'"),
        ("imaging", {"PROCTRAIL_DICOM_WORKERS": "lots"},
         "imaging: PROCTRAIL_DICOM_WORKERS must be a count of 1 to 64, or auto"
         " (one per CPU, at most 4), not 'lots'"),
    ],
)  # fmt: skip
def test_a_service_with_a_wrong_setting_stops_with_one_line(
    tmp_path: Path, service: str, settings: dict[str, str], line: str
) -> None:
    done = _run([sys.executable, "-m", f"services.{service}"], tmp_path, **settings)
    assert (done.returncode, done.stderr, done.stdout) == (EX_CONFIG, line + "\n", "")


def test_proctrail_up_with_a_wrong_setting_starts_nothing(tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "proctrail.cli", "up"], tmp_path,
                PROCTRAIL_DOSE_THRESHOLD_RP_GY="-2")  # fmt: skip
    line = "proctrail: PROCTRAIL_DOSE_THRESHOLD_RP_GY must be a number above 0, not '-2'\n"
    assert (done.returncode, done.stderr, done.stdout) == (EX_CONFIG, line, "")
    assert not (tmp_path / "var").exists()  # no service got as far as its data dir


def test_a_command_with_an_unknown_variable_stops_with_one_line(tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "proctrail.cli", "verify"], tmp_path,
                PROCTRAIL_LOG_FROMAT="json")  # fmt: skip
    line = (
        "proctrail: PROCTRAIL_LOG_FROMAT is unknown to proctrail"
        " (did you mean PROCTRAIL_LOG_FORMAT?)\n"
    )
    assert (done.returncode, done.stderr, done.stdout) == (EX_CONFIG, line, "")


def test_every_variable_the_repository_mentions_is_known() -> None:
    """Code, tests, benches, deploy/ and the docs: a name not known here would stop every
    service it reaches as a typo (services started by tests inherit the tests' variables)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True).stdout.decode().split("\0")  # fmt: skip
    where: dict[str, str] = {}
    for name in filter(None, tracked):
        path = REPO / name
        if path.is_file():
            for found in MENTION.findall(path.read_bytes()):
                where.setdefault(found.decode(), name)
    allowed = KNOWN | DELIBERATE_TYPOS | NOT_VARIABLES
    assert {name: file for name, file in where.items() if name not in allowed} == {}


def test_the_imaging_listeners_variables_are_known_to_every_service() -> None:
    variables = set(ImagingSettings.variables().values())
    assert variables <= READ_ELSEWHERE.keys()
    assert {v for v, reader in READ_ELSEWHERE.items() if reader.startswith("imaging:")} == variables


def test_the_example_environment_file_documents_every_setting() -> None:
    documented = {
        m.decode() for m in MENTION.findall((REPO / "deploy/proctrail.env.example").read_bytes())
    }
    assert (
        set(Settings.variables().values()) | set(ImagingSettings.variables().values()) <= documented
    )
