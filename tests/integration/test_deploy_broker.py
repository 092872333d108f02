"""The broker as deploy/ sets it up: TLS only, the topology and one user per service loaded
from definitions at boot. Each service runs as its own process, logs in as its own user over
TLS with no permission to configure anything, and the clinic still works end to end; a
service's user cannot read another's queue or declare one."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pika
import pika.exceptions
import pydicom
import pytest

from shared.bus import default_topology
from shared.bus.definitions import GRANTS, VHOST, definitions, user_name
from tests import dicom_factory
from tests.integration.conftest import (
    REPO,
    dcmtk,
    free_port,
    service_env,
    token,
    wait_until,
)
from tests.integration.own_broker import OwnBroker, own_broker
from tests.integration.test_deploy_files import make_secrets
from tests.processes import stop

pytestmark = pytest.mark.integration

DEFINITIONS = REPO / "deploy" / "rabbitmq" / "definitions.json"


def test_the_committed_definitions_are_the_topologys() -> None:
    """deploy/rabbitmq/definitions.json is `proctrail broker-definitions`, not a hand copy."""
    committed = json.loads(DEFINITIONS.read_text())
    assert committed == definitions(default_topology())


def shipped_config() -> str:
    """deploy/rabbitmq/rabbitmq.conf, pointed at the test's node: its port, its directory in
    place of /run/secrets, and a disk limit this shared machine can meet."""
    text = (REPO / "deploy" / "rabbitmq" / "rabbitmq.conf").read_text()
    for old, new in (("/run/secrets", "{base}"), ("listeners.ssl.default = 5671",
                     "listeners.ssl.default = {port}"), ("disk_free_limit.absolute = 2GB",
                     "disk_free_limit.absolute = 50MB")):  # fmt: skip
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[OwnBroker, Path, dict[str, str]]]:
    """A node as compose.yaml runs it: the shipped configuration, and what make-secrets made
    (certificates, the definitions with the services' password hashes)."""
    secrets = make_secrets(tmp_path / "secrets")
    passwords = {s: (secrets / f"amqp-{s}.password").read_text().strip() for s in GRANTS}
    names = ("ca.crt", "broker.crt", "broker.key", "rabbitmq-definitions.json")
    with own_broker(shipped_config(), {n: (secrets / n).read_bytes() for n in names}) as node:
        yield node, secrets, passwords


def connect(node: OwnBroker, pki: Path, user: str, password: str) -> pika.BlockingConnection:
    params = pika.ConnectionParameters(
        "localhost", node.port, VHOST, pika.PlainCredentials(user, password),
        ssl_options=pika.SSLOptions(ssl.create_default_context(cafile=str(pki / "ca.crt")),
                                    "localhost"),
    )  # fmt: skip
    return pika.BlockingConnection(params)


@contextmanager
def started(name: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT, cwd=REPO)  # fmt: skip
    try:
        yield process
    finally:
        stop(process)


def bus_ready(log: Path) -> bool:
    return '"bus ready"' in log.read_text(errors="replace")


def test_each_service_logs_in_as_its_own_user_over_tls_and_the_clinic_works(
    broker: tuple[OwnBroker, Path, dict[str, str]], tmp_path: Path
) -> None:
    node, pki, passwords = broker
    bedside_port, audit_port, dicom_port = free_port(), free_port(), free_port()
    common = service_env(
        "amqps://unused", tmp_path / "var",
        PROCTRAIL_AMQP_DECLARE="false",
        PROCTRAIL_AMQP_TLS_CA=str(pki / "ca.crt"),
        PROCTRAIL_BEDSIDE_ADDR=f"127.0.0.1:{bedside_port}",
        PROCTRAIL_AUDIT_ADDR=f"127.0.0.1:{audit_port}",
        PROCTRAIL_DICOM_ADDR=f"127.0.0.1:{dicom_port}",
        PROCTRAIL_DICOM_ALLOWED_AETS="STORESCU",
        PROCTRAIL_DICOM_WORKERS="1",
    )  # fmt: skip
    logs = {}
    with ExitStack() as stack:
        for service in GRANTS:
            secret = tmp_path / f"amqp-{service}.password"
            secret.write_text(passwords[service])
            env = {**common,
                   "PROCTRAIL_AMQP_URL": f"amqps://{user_name(service)}@localhost:{node.port}/{VHOST}",
                   "PROCTRAIL_AMQP_PASSWORD_FILE": str(secret)}  # fmt: skip
            logs[service] = tmp_path / f"{service}.log"
            stack.enter_context(started(service, env, logs[service]))
        for log in logs.values():
            wait_until(lambda log=log: bus_ready(log), 60)
        nurse, officer = token(common, "nurse", "nurse.ana"), token(common, "compliance", "co")
        bedside = stack.enter_context(httpx.Client(
            base_url=f"http://127.0.0.1:{bedside_port}", timeout=30,
            headers={"Authorization": f"Bearer {nurse}"}))  # fmt: skip
        wait_until(lambda: bedside.get("/healthz").json()["broker_connected"], 30)
        r = bedside.post("/v1/procedures", json={
            "phase": "implant", "patient": {"id": "PAT-D1"}, "room": "OR-1",
            "accession_number": "ACC-D1"})  # fmt: skip
        assert r.status_code == 201, r.text
        procedure = r.json()["procedure_id"]
        vitals = {"spo2_pct": 97, "heart_rate_bpm": 71, "source": "monitor", "artifact": False}
        r = bedside.post("/v1/events", json={
            "event_id": str(uuid.uuid4()), "type": "sedation.vitals_recorded", "schema": 1,
            "procedure_id": procedure, "occurred_at": "2026-11-21T09:00:00+00:00",
            "actor": {"id": "nurse.ana", "role": "nurse"},
            "source": {"kind": "tablet", "id": "t1"}, "payload": vitals})  # fmt: skip
        assert r.status_code == 202, r.text
        (image,) = dicom_factory.ct_series(tmp_path / "ct", 1)
        ds = pydicom.dcmread(image)
        ds.PatientID, ds.AccessionNumber = "PAT-D1", "ACC-D1"
        ds.save_as(image)
        sent = subprocess.run([dcmtk("storescu"), "-aet", "STORESCU", "-aec", "PROCTRAIL",
                               "127.0.0.1", str(dicom_port), str(image)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert sent.returncode == 0, sent.stderr

        audit = stack.enter_context(httpx.Client(
            base_url=f"http://127.0.0.1:{audit_port}", timeout=30,
            headers={"Authorization": f"Bearer {officer}"}))  # fmt: skip

        def types() -> set[str]:
            r = audit.get("/v1/audit/entries", params={"procedure_id": procedure})
            return {e["event"]["type"] for e in r.json()["entries"]}

        wanted = {"procedure.scheduled", "sedation.vitals_recorded", "imaging.capture_received"}
        wait_until(lambda: wanted <= types(), 60)


def refused(action: Any) -> bool:
    try:
        action()
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code == 403
    return False


def publish(conn: pika.BlockingConnection, exchange: str) -> None:
    channel = conn.channel()
    channel.confirm_delivery()
    channel.basic_publish(exchange, "alert.x", b"{}")


def test_a_services_user_may_read_only_its_own_queue_and_configure_nothing(
    broker: tuple[OwnBroker, Path, dict[str, str]],
) -> None:
    node, pki, passwords = broker
    conn = connect(node, pki, user_name("bedside"), passwords["bedside"])
    try:
        assert conn.channel().queue_declare("q.bedside", passive=True).method.message_count == 0
        assert refused(lambda: conn.channel().basic_get("q.audit"))
        assert refused(lambda: conn.channel().queue_declare("q.mine", durable=True))
        assert refused(lambda: publish(conn, "proctrail.audit"))
        channel = conn.channel()
        channel.basic_get("q.bedside")  # its own queue: allowed
    finally:
        conn.close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(node, pki, user_name("audit"), "not its password")
