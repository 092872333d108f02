"""Fixtures on the real RabbitMQ: a fresh vhost per test, and the whole system as processes.

Without a reachable broker these tests skip on a developer's machine and FAIL when CI=true,
so a CI run can never go green by silently not testing the broker.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pika
import pytest

from shared.bus.topology import Q_AUDIT
from tests.processes import stop

BROKER_URL = os.environ.get("PROCTRAIL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REPO = Path(__file__).resolve().parents[2]


def _broker_reachable() -> bool:
    url = urllib.parse.urlparse(BROKER_URL)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), timeout=2):
            return True
    except OSError:
        return False


def _require_broker() -> None:
    if _broker_reachable():
        return
    message = f"RabbitMQ is not reachable at {BROKER_URL}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI=true: integration tests must not skip)", pytrace=False)
    pytest.skip(message)


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is needed to create a test vhost", pytrace=False)
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@functools.cache
def dcmtk(tool: str) -> str:
    """DCMTK's own binary (pynetdicom installs look-alikes with other options into .venv/bin)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(folder) / tool
        if path.is_file() and os.access(path, os.X_OK):
            version = subprocess.run([path, "--version"], capture_output=True, text=True)
            if "dcmtk" in (version.stdout + version.stderr).lower():
                return str(path)
    pytest.fail(f"DCMTK's {tool} is not on PATH (Debian package dcmtk)", pytrace=False)


def wait_until(check: Callable[[], object], timeout: float = 20.0, every: float = 0.05) -> object:
    """Poll until `check()` is truthy; a generous bound, never an assertion about speed."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


@pytest.fixture(autouse=True)
def collect_garbage_here() -> Iterator[None]:
    """Collect each test's garbage as it ends, so an unclosed socket it left (pynetdicom's
    modality side leaves some behind when a listener goes away) is reported against that test,
    under its warning filters, and never against whichever test the collector runs in later."""
    yield
    gc.collect()


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A URL on a vhost of its own, deleted afterwards (the shared broker is never stopped)."""
    _require_broker()
    vhost = f"proctrail-test-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    base = urllib.parse.urlparse(BROKER_URL)
    yield base._replace(path="/" + urllib.parse.quote(vhost, safe="")).geturl()
    _rabbitmqctl("delete_vhost", vhost)


def take_messages(amqp_url: str, queue: str) -> list[bytes]:
    """Take (and ack) every message waiting on `queue` right now."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = conn.channel()
        out = []
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append(body)
    finally:
        conn.close()


def ledger_bound(amqp_url: str) -> list[dict[str, Any]]:
    """The events of every record waiting on q.audit (for tests where no audit service runs)."""
    return [orjson.loads(body)["event"] for body in take_messages(amqp_url, Q_AUDIT)]


def close_connections(amqp_url: str) -> None:
    vhost = urllib.parse.unquote(urllib.parse.urlparse(amqp_url).path[1:])
    _rabbitmqctl("close_all_connections", "--vhost", vhost, "test: broker connection lost")


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port the kernel hands
    out (bind to 0) may be given next to an outgoing connection's local end before the
    service under test binds it, and that service then fails with "address in use"."""
    low, _high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    while True:
        port = _PORTS.randrange(max(1024, low - 12_000), low)
        if port in _GIVEN:
            continue  # not twice in one run: two services of one test would share it
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port


_PORTS = random.Random()
_GIVEN: set[int] = set()


SERVICES = ("audit", "harvest", "implant", "imaging", "bedside")


def service_env(amqp_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Settings for services under test; no metrics endpoint unless `extra` gives one an
    address (the default ports are not theirs to take)."""
    env = dict(os.environ)
    env.update(
        PROCTRAIL_AMQP_URL=amqp_url,
        PROCTRAIL_DATA_DIR=str(data_dir),
        PROCTRAIL_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
        **{f"PROCTRAIL_{s.upper()}_METRICS_ADDR": "off" for s in SERVICES},
    )
    env.update(extra)
    return env


def token(env: dict[str, str], role: str, user: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "proctrail.cli", "token", "create", "--role", role, "--user", user],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return out.stdout.strip()


@dataclass
class System:
    """`proctrail up` running on its own vhost, data dir and ports."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    bedside: str
    audit: str
    dicom_port: int
    log_path: Path
    nurse: str
    compliance: str
    metrics: dict[str, int] = field(default_factory=dict)  # service -> its /metrics port

    def bedside_client(self, tok: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.bedside, headers=headers, timeout=30)

    def audit_client(self, tok: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.audit, headers=headers, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, service: str, event: str, **fields: object) -> bool:
        """Whether `service` logged `event` with these fields (its JSON lines, parsed)."""
        for line in self.log().splitlines():
            name, _, text = line.partition(" | ")
            if name.strip() != service:
                continue
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if record.get("event") == event and all(record.get(k) == v for k, v in fields.items()):
                return True
        return False


def service_processes(system: System) -> dict[str, list[int]]:
    """Each service `proctrail up` runs: its process first, then its own children (the
    imaging listener's workers), read from /proc."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        pid = int(proc.name)
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(pid)
        for part in cmdline:
            if part.startswith(b"services."):
                names[pid] = part.decode().removeprefix("services.")
    return {names[pid]: [pid, *children.get(pid, [])]
            for pid in children.get(system.process.pid, []) if pid in names}  # fmt: skip


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def system(amqp_url: str, tmp_path: Path) -> Iterator[System]:
    with running_system(amqp_url, tmp_path) as sysm:
        yield sysm


@contextmanager
def running_system(amqp_url: str, tmp_path: Path, **extra_env: str) -> Iterator[System]:
    """`proctrail up` on its own vhost, data dir and ports; `extra_env` adds settings."""
    bedside_port, audit_port, dicom_port = free_port(), free_port(), free_port()
    metrics = {service: free_port() for service in SERVICES}
    data_dir = tmp_path / "var"
    env = service_env(
        amqp_url,
        data_dir,
        PROCTRAIL_BEDSIDE_ADDR=f"127.0.0.1:{bedside_port}",
        PROCTRAIL_AUDIT_ADDR=f"127.0.0.1:{audit_port}",
        PROCTRAIL_DICOM_ADDR=f"127.0.0.1:{dicom_port}",
        PROCTRAIL_DICOM_ALLOWED_AETS="STORESCU,ECHOSCU,MODALITY1",
        **{f"PROCTRAIL_{s.upper()}_METRICS_ADDR": f"127.0.0.1:{p}" for s, p in metrics.items()},
        **extra_env,
    )
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "proctrail.cli", "up"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    sysm = System(
        process,
        env,
        data_dir,
        f"http://127.0.0.1:{bedside_port}",
        f"http://127.0.0.1:{audit_port}",
        dicom_port,
        log_path,
        nurse=token(env, "nurse", "nurse.ana"),
        compliance=token(env, "compliance", "co.ben"),
        metrics=metrics,
    )
    try:
        wait_until(lambda: _healthy(sysm.bedside) and _healthy(sysm.audit), timeout=60)
        for service in SERVICES:
            wait_until(lambda s=service: sysm.logged(s, "bus ready"), timeout=60)
        wait_until(lambda: sysm.logged("imaging", "listening"), timeout=60)
        yield sysm
    finally:
        stop(process, signal.SIGINT)
