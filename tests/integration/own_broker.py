"""A RabbitMQ node of the test's own, on other ports, that a test may stop and start.

The shared broker on 5672 is never touched (messaging.md). The node keeps its data in a temp
dir, so what was queued survives a stop/start as it would in production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import free_port


@dataclass
class OwnBroker:
    node: str
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self._ctl("await_startup", timeout=30).returncode == 0 and self._port_open():
                return
            time.sleep(0.5)
        raise AssertionError(f"own RabbitMQ node {self.node} did not start")

    def stop(self) -> None:
        self._ctl("stop")
        deadline = time.monotonic() + 60
        while self._port_open() and time.monotonic() < deadline:
            time.sleep(0.2)

    def _port_open(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


def _hand_over(base: Path) -> None:
    """Debian's rabbitmq-server runs the node as the rabbitmq user: let it write its dirs."""
    for sub in ("mnesia", "log"):
        (base / sub).mkdir(exist_ok=True)
    try:
        owner = shutil.chown
        for path in (base, *base.rglob("*")):
            owner(path, "rabbitmq", "rabbitmq")
    except (LookupError, PermissionError):
        for path in (base, *base.rglob("*")):
            path.chmod(0o777 if path.is_dir() else 0o666)


PLAIN = "listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"


@contextmanager
def own_broker(config: str = PLAIN, files: dict[str, bytes] | None = None) -> Iterator[OwnBroker]:
    """`config` is the node's rabbitmq.conf, with {port} and {base} (its directory, where
    `files` are written) filled in."""
    if shutil.which("rabbitmq-server") is None:
        pytest.fail("rabbitmq-server is needed for a broker of the test's own", pytrace=False)
    port, dist = free_port(), free_port()
    node = f"proctrail-test-{uuid.uuid4().hex[:8]}@localhost"
    # Not under pytest's tmp_path: the node's user must be able to reach its directory.
    base = Path(tempfile.mkdtemp(prefix="proctrail-rabbitmq-"))
    base.chmod(0o755)
    (base / "enabled_plugins").write_text("[].\n")
    for name, data in (files or {}).items():
        (base / name).write_bytes(data)
    (base / "rabbitmq.conf").write_text(config.format(port=port, base=base))
    env = dict(
        os.environ,
        RABBITMQ_NODENAME=node,
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist),
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_PID_FILE=str(base / "node.pid"),
    )
    _hand_over(base)
    broker = OwnBroker(node, port, env)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)
