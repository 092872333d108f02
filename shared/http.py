"""What bedside and audit share over HTTP: problem+json errors and bearer-token roles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute
from starlette.staticfiles import StaticFiles

from shared.auth import Principal, TokenStore
from shared.events import FieldError, Role
from shared.openapi import PROBLEM as PROBLEM  # where the services and tests take it from
from shared.openapi import DocumentedMount, DocumentedRoute, Operation, static_files, text


class Problem(Exception):
    """An RFC 9457 problem detail; raised anywhere in a request, rendered by `problem_handler`."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}


def invalid(errors: list[FieldError]) -> Problem:
    """422 naming each invalid field."""
    fields = ", ".join(e.field for e in errors)
    return Problem(422, "Unprocessable Content", f"invalid: {fields}", errors=errors)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def problem_response(problem: Problem, instance: str) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
    }
    if problem.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    return Response(orjson.dumps(body), problem.status, problem.headers, media_type=PROBLEM)


async def problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request.url.path)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "HTTP error")
    return problem_response(Problem(exc.status_code, title, str(exc.detail)), request.url.path)


EXCEPTION_HANDLERS = {Problem: problem_handler, HTTPException: http_exception_handler}


def authenticate(request: Request, tokens: TokenStore, allowed: Iterable[Role]) -> Principal:
    """401 without a valid bearer token, 403 when its role may not make this call."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="proctrail"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401, "Unauthorized", "an Authorization: Bearer token is required", headers=challenge
        )
    principal = tokens.lookup(token.strip())
    if principal is None:
        raise Problem(401, "Unauthorized", "the bearer token is not valid", headers=challenge)
    allowed_roles = set(allowed)
    if principal.role not in allowed_roles:
        raise Problem(
            403,
            "Forbidden",
            f"role {principal.role!r} may not do this; allowed: {', '.join(sorted(allowed_roles))}",
        )
    return principal


async def read_json(request: Request) -> Any:
    body = await request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            422,
            "Unprocessable Content",
            f"body is not JSON: {exc}",
            errors=[FieldError("body", "not valid JSON")],
        ) from None


def web_app_routes(static: Path) -> list[BaseRoute]:
    """A service's web app: `static/index.html` at `/`, the rest of `static/` under `/app/`.

    Loading the app needs no token (it holds no data); every call it then makes does.
    """

    async def index(request: Request) -> Response:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    return [
        DocumentedRoute("GET", "/", index, Operation(
            "the web app", {"text/html": text("text/html", "the app's page")}, public=True)),
        DocumentedMount("/app", StaticFiles(directory=static), Operation(
            "the web app's scripts and styles", static_files(static), public=True,
            errors={404: "no such file"})),
    ]  # fmt: skip
