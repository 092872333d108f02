"""OpenAPI 3.1 documents for the HTTP services, built from the routes an app serves.

Every route of bedside and audit is a `DocumentedRoute` (the web app's files a
`DocumentedMount`) carrying its `Operation`: what a success answers (a pydantic model of the
JSON body, or the media types of a file), its parameters, its request body (the same pydantic
model that validates it) and the errors it gives, each a problem+json. `document()` walks
`app.routes`, so the document lists every route the app serves and nothing else, and a route
without an operation cannot be served undocumented: building the document refuses it.

Each service serves its own at `GET /openapi.json` (a bearer token, as for every call).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema, models_json_schema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

PROBLEM = "application/problem+json"
JSON = "application/json"
_REF = "#/components/schemas/{model}"

Schema = Mapping[str, Any]
Endpoint = Callable[[Request], Awaitable[Response]]

# A success body: a model of its JSON, or each media type it may have with the schema (or the
# model) of that body.
Body = type[BaseModel] | Mapping[str, Schema | type[BaseModel]]

# `X | Absent = None`: a key an answer may leave out, but never sends as null.
Absent = SkipJsonSchema[None]
Base64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$", description="base64")]


def text(media: str, description: str) -> dict[str, Any]:
    """The schema of a body of text (or bytes) of one media type."""
    return {"type": "string", "contentMediaType": media, "description": description}


class Answer(BaseModel):
    """Base of the response models: the document says exactly which keys an answer has."""

    model_config = ConfigDict(extra="forbid")


class FieldProblem(Answer):
    field: str
    message: str


class Problem(Answer):
    """An RFC 9457 problem detail: every error of these services."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldProblem] | Absent = Field(default=None, description="one per invalid field")


class OpenApiDocument(Answer):
    """An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)."""

    openapi: str = Field(pattern=r"^3\.1\.\d+$")
    info: dict[str, Any]
    paths: dict[str, dict[str, Any]]
    components: dict[str, Any]
    security: list[dict[str, list[str]]]


@dataclass(frozen=True)
class Operation:
    """What the document says of one route.

    `returns`: the success body; `ok` its status, `also` other statuses answered with the
    same body (and why). `query` and `header`: the parameters it reads (name -> schema),
    `required` those it needs; path parameters are read from the route's path. `errors`:
    status -> why, each a problem+json (401 and 403 are added unless `public`).
    `response_headers`: headers every success carries, name -> description.
    """

    summary: str
    returns: Body
    ok: int = 200
    also: Mapping[int, str] = field(default_factory=dict)
    body: type[BaseModel] | None = None
    query: Mapping[str, Schema] = field(default_factory=dict)
    header: Mapping[str, Schema] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    errors: Mapping[int, str] = field(default_factory=dict)
    response_headers: Mapping[str, str] = field(default_factory=dict)
    public: bool = False

    def problems(self) -> dict[int, str]:
        out = dict(self.errors)
        if not self.public:
            out.setdefault(401, "no valid bearer token")
            out.setdefault(403, "this token's role may not")
        return out


class DocumentedRoute(Route):
    """A route of one method (HEAD comes with GET) and the operation that documents it."""

    def __init__(self, method: str, path: str, endpoint: Endpoint, operation: Operation) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.operation = operation


class DocumentedMount(Mount):
    """A mounted app answering GET under `<path>/{path}` (static files), documented."""

    def __init__(self, path: str, app: ASGIApp, operation: Operation) -> None:
        super().__init__(path, app=app)
        self.operation = operation


def static_files(directory: Path) -> dict[str, Schema]:
    """The media types of the files in `directory`, as a body of each (how they are served)."""
    kinds = sorted({mimetypes.guess_type(p.name)[0] or "text/plain" for p in _files(directory)})
    return {kind: text(kind, "a file of the web app") for kind in kinds}


def operations(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str, Operation]]:
    """(method, path, operation) of each route; a route without an operation is refused."""
    for route in routes:
        if isinstance(route, DocumentedRoute):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path_format, route.operation
        elif isinstance(route, DocumentedMount):
            yield "GET", route.path_format, route.operation
        else:
            raise TypeError(f"{getattr(route, 'path', route)!r} has no OpenAPI operation")


def document(title: str, description: str, routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`, each response with its schema."""
    listed = list(operations(routes))
    models: list[type[BaseModel]] = sorted(
        {Problem, *_models(op for _, _, op in listed)}, key=lambda m: m.__name__
    )
    refs, defs = models_json_schema(
        [(model, "validation") for model in models],
        ref_template=_REF,
        by_alias=True,
    )
    ref = {model: refs[(model, "validation")] for model in models}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in listed:
        paths.setdefault(path, {})[method.lower()] = _operation(path, op, ref)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def served(app: Starlette, title: str, description: str) -> dict[str, Any]:
    """The document of `app`, built from its routes on first use."""
    state = app.state
    if not hasattr(state, "openapi"):
        state.openapi = document(title, description, app.routes)
    built: dict[str, Any] = state.openapi
    return built


_ERROR_HEADERS = {
    401: {"WWW-Authenticate": "the bearer challenge, when the token is missing or not valid"},
    503: {"Retry-After": "seconds to wait before sending the same request again"},
}


def _operation(path: str, op: Operation, ref: Mapping[type[BaseModel], Any]) -> dict[str, Any]:
    if isinstance(op.returns, type):
        content: dict[str, Any] = {JSON: {"schema": ref[op.returns]}}
    else:
        content = {
            media: {"schema": ref[schema] if isinstance(schema, type) else dict(schema)}
            for media, schema in op.returns.items()
        }
    responses: dict[str, Any] = {
        str(op.ok): _response(op.summary, content, op.response_headers, required=True),
        **{str(status): _response(why, content) for status, why in op.also.items()},
    }
    problem = {PROBLEM: {"schema": ref[Problem]}}
    for status, why in sorted(op.problems().items()):
        responses[str(status)] = _response(why, problem, _ERROR_HEADERS.get(status, {}))
    out: dict[str, Any] = {"summary": op.summary, "responses": dict(sorted(responses.items()))}
    parameters = [
        *({"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
          for name in _path_names(path)),
        *({"name": name, "in": "query", "required": name in op.required, "schema": dict(schema)}
          for name, schema in op.query.items()),
        *({"name": name, "in": "header", "required": name in op.required, "schema": dict(schema)}
          for name, schema in op.header.items()),
    ]  # fmt: skip
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": ref[op.body]}}}
    if op.public:
        out["security"] = []
    return out


def _response(
    description: str,
    content: dict[str, Any],
    headers: Mapping[str, str] | None = None,
    *,
    required: bool = False,
) -> dict[str, Any]:
    """`required`: every such answer carries each of `headers`."""
    out: dict[str, Any] = {"description": description, "content": content}
    if headers:
        out["headers"] = {
            name: {"description": why, "required": required, "schema": {"type": "string"}}
            for name, why in headers.items()
        }
    return out


def _models(ops: Iterator[Operation]) -> set[type[BaseModel]]:
    out: set[type[BaseModel]] = set()
    for op in ops:
        if isinstance(op.returns, type):
            out.add(op.returns)
        else:
            out.update(s for s in op.returns.values() if isinstance(s, type))
        if op.body is not None:
            out.add(op.body)
    return out


def _files(directory: Path) -> Iterator[Path]:
    return (p for p in directory.rglob("*") if p.is_file())


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
