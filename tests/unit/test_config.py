"""Settings from the environment: the deployment's knobs (deploy/compose.yaml sets them)."""

from __future__ import annotations

from pathlib import Path

import psycopg.conninfo

from shared.config import Settings


def test_the_defaults_are_the_contracts() -> None:
    s = Settings.from_env({})
    assert (s.bedside_addr, s.audit_addr, s.dicom_addr) == (
        ("127.0.0.1", 8080), ("127.0.0.1", 8081), ("127.0.0.1", 11112))  # fmt: skip
    assert s.metrics_addrs["audit"] == ("127.0.0.1", 9465)
    assert s.amqp_declare is True
    assert s.database_url is None


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
