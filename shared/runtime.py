"""How each service process starts and stops: logging, the bus, HTTP, and clean signals."""

from __future__ import annotations

import os
import signal
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from shared import logging as plogging
from shared.auth import TokenStore
from shared.config import Settings
from shared.environment import SettingsError
from shared.metrics import MetricsServer

if TYPE_CHECKING:
    from shared.bus import PikaBus

log = structlog.get_logger("shared.runtime")

QUEUE_WATCH_S = 5.0  # how often each service reads the queues' depths (DLQs too) for metrics


def boot(service: str) -> Settings:
    """The service's settings, its logging set up; a settings error ends the process."""
    with exit_on_settings_error(service):
        settings = Settings.from_env()
    plogging.configure(service, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@contextmanager
def exit_on_settings_error(service: str) -> Iterator[None]:
    """A SettingsError inside ends the process: one line on stderr, exit status EX_CONFIG (78),
    no traceback."""
    try:
        yield
    except SettingsError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        raise SystemExit(os.EX_CONFIG) from None


def make_bus(settings: Settings, service: str) -> PikaBus:
    """The service's bus; it also reads every queue's depth for the metrics."""
    from shared.bus import PikaBus, default_topology  # here: the imaging parent has no bus

    password = None
    if settings.amqp_password_file is not None:
        password = settings.amqp_password_file.read_text().strip()
    return PikaBus(
        settings.amqp_url,
        default_topology(settings.delivery_limit),
        name=service,
        watch_queues_s=QUEUE_WATCH_S,
        declare=settings.amqp_declare,
        password=password,
        tls=amqp_tls(settings),
    )


def amqp_tls(settings: Settings) -> ssl.SSLContext | None:
    """For amqps:// URLs: verify the broker against the CA given (else the system's), and
    present a client certificate when one is given."""
    if not settings.amqp_url.startswith("amqps://"):
        return None
    ca = str(settings.amqp_tls_ca) if settings.amqp_tls_ca else None
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.amqp_tls_cert is not None:
        key = str(settings.amqp_tls_key) if settings.amqp_tls_key else None
        context.load_cert_chain(str(settings.amqp_tls_cert), key)
    return context


def serve_metrics(
    settings: Settings, service: str, multiprocess_dir: Path | None = None
) -> MetricsServer | None:
    """The service's Prometheus endpoint, started (None when its address is "off")."""
    addr = settings.metrics_addrs.get(service)
    if addr is None:
        return None
    server = MetricsServer(addr, TokenStore(settings.data_dir), multiprocess_dir)
    server.start()
    log.info("metrics", addr=f"{addr[0]}:{server.port}")
    return server


def serve_http(app: object, addr: tuple[str, int]) -> None:
    """Run uvicorn in this thread until SIGINT/SIGTERM; it handles the signals itself."""
    import uvicorn  # here: only bedside and audit serve HTTP, and it costs ~15 MB to import

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=addr[0],
        port=addr[1],
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()


def stop_signals() -> threading.Event:
    """An event set (and logged) on SIGINT or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def wait_for_stop() -> None:
    """Block until SIGINT or SIGTERM (consumer-only services)."""
    stop_signals().wait()
