"""Every answer as the service's OpenAPI document says: `conforming(app)` wraps an app for the
test clients and checks each response it gives against the document built from its routes.

The status must be documented for the operation, with the headers it requires, the media
type documented for that status, and a JSON body (application/json, problem+json, *+json)
valid against its schema. A request no route matches must be answered with a problem. So
every HTTP test that goes through the `bedside_client` or `audit_client` fixture also checks
the document against real answers.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import orjson
from starlette.applications import Starlette
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from shared.http import PROBLEM
from shared.openapi import document


class NotAsDocumented(AssertionError):
    pass


def conforming(app: Starlette) -> Conforming:
    return Conforming(app)


class Conforming:
    """An ASGI app that passes everything through to `app`, then checks the answer."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.document = document("checked", "", app.routes)
        self._validators: dict[tuple[str, ...], jsonschema_rs.Validator] = {}
        self.answered: set[tuple[str, str, int]] = set()  # (method, path template, status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = dict(scope)  # as it came in: routing rewrites the scope (a mount's root_path)
        answer: dict[str, Any] = {"body": b""}

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                answer["headers"] = headers
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
            await send(message)

        await self.app(scope, receive, recording)
        self.check(asked, answer["status"], answer["headers"], answer["body"])

    def check(self, scope: Scope, status: int, headers: dict[str, str], body: bytes) -> None:
        """Raise NotAsDocumented unless this answer is one the document describes."""
        method = "get" if scope["method"] == "HEAD" else scope["method"].lower()
        path = self._documented_path(scope)
        asked = f"{scope['method']} {scope['path']}"
        paths = self.document["paths"]
        if path is None or method not in paths[path]:
            key: tuple[str, ...] = ("problem",)
            responses = {str(status): {"content": {PROBLEM: {"schema": PROBLEM_REF}}}}
            where = f"{asked} (no operation)"
        else:
            responses = paths[path][method]["responses"]
            where = f"{asked} ({method.upper()} {path})"
        response = responses.get(str(status))
        if response is None:
            raise NotAsDocumented(f"{where} answered {status}; documented: {sorted(responses)}")
        missing = [h for h, d in response.get("headers", {}).items()
                   if d.get("required") and h.lower() not in headers]  # fmt: skip
        if missing:
            raise NotAsDocumented(f"{where} answered {status} without its headers {missing}")
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        content = response["content"]
        if media not in content:
            raise NotAsDocumented(
                f"{where} answered {status} as {media!r}; documented: {sorted(content)}"
            )
        if path is not None and method in paths[path]:
            key = (path, method, str(status), media)
            self.answered.add((method.upper(), path, status))
        if scope["method"] == "HEAD" or not is_json(media):
            return
        errors = list(
            self._validator(key, content[media]["schema"]).iter_errors(orjson.loads(body))
        )
        if errors:
            shown = "; ".join(
                f"{e.message} at /{'/'.join(map(str, e.instance_path))}" for e in errors
            )
            raise NotAsDocumented(
                f"{where} answered {status} with a body not as documented: {shown}"
            )

    def _documented_path(self, scope: Scope) -> str | None:
        """The path template of the route that takes this request (any method), if any."""
        for route in self.app.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return str(route.path_format)  # type: ignore[attr-defined]
        return None

    def _validator(self, key: tuple[str, ...], schema: dict[str, Any]) -> jsonschema_rs.Validator:
        if key not in self._validators:
            self._validators[key] = jsonschema_rs.validator_for(
                {**schema, "components": self.document["components"]}, validate_formats=True
            )
        return self._validators[key]


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def is_json(media: str) -> bool:
    return media in ("application/json", PROBLEM) or media.endswith("+json")
