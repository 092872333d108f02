"""Prometheus metrics (prometheus_client): what every service counts, and the endpoint that
serves them.

Each service serves `GET /metrics` on its own address (`PROCTRAIL_<SERVICE>_METRICS_ADDR`)
to a scraper holding a bearer token of role `monitor` (or `admin`), like every other HTTP
call. The imaging listener's worker processes count into prometheus_client's multiprocess
files (`PROMETHEUS_MULTIPROC_DIR`, set by the listener's parent for its workers), and the
parent serves their sum.
"""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
    multiprocess,
)

from shared.auth import TokenStore

log = structlog.get_logger("shared.metrics")

SCRAPERS = ("monitor", "admin")

EVENTS_IN = Counter(
    "proctrail_events_in_total",
    "What a service took in and settled: messages from a queue, events posted over HTTP,"
    " DICOM objects; by how it was settled",
    ["via", "outcome"],
)
EVENTS_OUT = Counter(
    "proctrail_events_out_total",
    "Messages a service published, by the broker's answer (confirmed, nacked, unroutable)",
    ["exchange", "outcome"],
)
QUEUE_MESSAGES = Gauge(
    "proctrail_queue_messages",
    "Messages ready in a queue (its dead-letter queue <queue>.dead too), as last read from the"
    " broker",
    ["queue"],
    multiprocess_mode="mostrecent",
)
CONSUMER_LAG = Gauge(
    "proctrail_consumer_lag_seconds",
    "How long the oldest message of the last batch a consumer settled had waited since it was"
    " published",
    ["queue"],
    multiprocess_mode="max",
)
DICOM_ASSOCIATIONS = Counter(
    "proctrail_dicom_associations_total",
    "DICOM associations, by how they ended (released, aborted, rejected)",
    ["outcome"],
)
DICOM_BYTES = Counter(
    "proctrail_dicom_received_bytes_total", "Bytes of DICOM objects received by C-STORE"
)


class MetricsServer:
    """`GET /metrics` for a scraper with a bearer token; anything else is a 404."""

    def __init__(
        self,
        addr: tuple[str, int],
        tokens: TokenStore,
        multiprocess_dir: Path | None = None,
    ) -> None:
        if multiprocess_dir is None:
            self.registry: CollectorRegistry = REGISTRY
        else:
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
        self.tokens = tokens
        self._server = ThreadingHTTPServer(addr, self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, authorization: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one GET."""
        if path.split("?", 1)[0] != "/metrics":
            return _problem(404, "Not Found", "only /metrics is served here")
        scheme, _, token = authorization.partition(" ")
        principal = self.tokens.lookup(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            return _problem(401, "Unauthorized", "a valid bearer token is required")
        if principal.role not in SCRAPERS:
            return _problem(403, "Forbidden", f"role {principal.role!r} may not read metrics")
        return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = server.answer(
                    self.path, self.headers.get("Authorization", "")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Bearer realm="proctrail"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes are not worth a log line each

        return Handler


def _problem(status: int, title: str, detail: str) -> tuple[int, str, bytes]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return status, "application/problem+json", orjson.dumps(body)


def fresh_multiprocess_dir(path: Path) -> Path:
    """An empty directory for worker processes' metric files (a previous run's are stale)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def forget_process(pid: int, path: Path) -> None:
    """A dead worker's live gauges no longer count (its counters still do)."""
    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
