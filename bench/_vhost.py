"""A throw-away RabbitMQ vhost for a benchmark run (the shared broker is never stopped)."""

from __future__ import annotations

import os
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

BROKER_URL = os.environ.get("PROCTRAIL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@contextmanager
def vhost() -> Iterator[str]:
    name = f"proctrail-bench-{uuid.uuid4().hex[:8]}"
    ctl = ["rabbitmqctl", "-q"]
    subprocess.run([*ctl, "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        [*ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        base = urllib.parse.urlparse(BROKER_URL)
        yield base._replace(path="/" + urllib.parse.quote(name, safe="")).geturl()
    finally:
        subprocess.run([*ctl, "delete_vhost", name], check=True, capture_output=True)
