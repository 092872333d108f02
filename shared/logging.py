"""structlog set-up: JSON when not a terminal, key=value in one; one logger name per service."""

from __future__ import annotations

import logging
import sys
from typing import Protocol

import orjson
import structlog


def _json_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=str).decode()


class Stream(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...
    def isatty(self) -> bool: ...


def configure(
    service: str, fmt: str = "auto", level: int = logging.INFO, stream: Stream | None = None
) -> None:
    """Route structlog and the standard library (pika, pynetdicom, uvicorn) through one renderer."""
    out = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())

    def add_service(
        _logger: object, _name: str, event: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event.setdefault("service", service)
        return event

    shared_processors: list[structlog.types.Processor] = [
        structlog.stdlib.filter_by_level,
        structlog.contextvars.merge_contextvars,
        add_service,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if console
        else structlog.processors.JSONRenderer(serializer=_json_dumps)
    )
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records from the standard library (pika, pynetdicom, uvicorn) carry no structlog
        # logger, and logging has filtered them by level already.
        foreign_pre_chain=shared_processors[1:],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("pika", "pynetdicom", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
