"""One log stream per service: its own structlog events and the libraries' (pika, pynetdicom,
uvicorn) standard-library records, all rendered as JSON lines with the service's name."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from shared import logging as plogging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    plogging.configure("audit", "json", stream=out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_librarys_warning_is_a_json_line_of_the_service(stream: io.StringIO) -> None:
    logging.getLogger("pika.adapters").warning("connection lost: %s", "reset")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("pika").info("below pika's level: not shown")

    assert [(x["event"], x["service"], x["level"]) for x in lines(stream)] == [
        ("connection lost: reset", "audit", "warning"),
        ("Started server process [42]", "audit", "info"),
    ]


def test_the_services_own_events_carry_their_fields(stream: io.StringIO) -> None:
    structlog.get_logger("audit").info("batch appended", appended=3)

    (line,) = lines(stream)
    assert (line["event"], line["appended"], line["service"]) == ("batch appended", 3, "audit")
