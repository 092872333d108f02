"""OpenAPI 3.1 documents for the HTTP services, built from the same pydantic models that
validate requests, so the document cannot drift from what the service accepts.

Each service serves its own at `GET /openapi.json` (a bearer token, as for every call).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

PROBLEM = "application/problem+json"
_REF = "#/components/schemas/{model}"

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


class Document:
    """One service's OpenAPI document, put together operation by operation."""

    def __init__(self, title: str, description: str) -> None:
        self.schemas: dict[str, Any] = {"Problem": _PROBLEM_SCHEMA}
        self.paths: dict[str, dict[str, Any]] = {}
        self.title, self.description = title, description

    def model(self, model: type[BaseModel]) -> dict[str, str]:
        """A reference to the model's JSON schema, its own definitions added to components."""
        schema = model.model_json_schema(ref_template=_REF, by_alias=True)
        self.schemas.update(schema.pop("$defs", {}))
        self.schemas[model.__name__] = schema
        return {"$ref": _REF.format(model=model.__name__)}

    def operation(
        self,
        method: str,
        path: str,
        summary: str,
        ok: int = 200,
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, dict[str, Any]] | None = None,
        required: tuple[str, ...] = (),
        answers: dict[int, str] | None = None,
        media: str = "application/json",
        public: bool = False,
    ) -> None:
        """`query`: name -> schema; `required` lists the required ones. Path parameters are
        read from `{name}` in the path (strings). `answers`: the errors it gives, and why."""
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_names(path)
        ]
        parameters += [
            {"name": name, "in": "query", "required": name in required, "schema": schema}
            for name, schema in (query or {}).items()
        ]
        responses: dict[str, Any] = {str(ok): {"description": "done",
                                               "content": {media: {"schema": {}}}}}  # fmt: skip
        errors = dict(answers or {})
        if not public:
            errors.setdefault(401, "no valid bearer token")
            errors.setdefault(403, "this role may not")
        for status, why in sorted(errors.items()):
            responses[str(status)] = {
                "description": why,
                "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        op: dict[str, Any] = {"summary": summary, "responses": responses}
        if parameters:
            op["parameters"] = parameters
        if body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        if public:
            op["security"] = []
        self.paths.setdefault(path, {})[method.lower()] = op

    def to_json(self) -> dict[str, Any]:
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": "1", "description": self.description},
            "paths": self.paths,
            "components": {
                "schemas": self.schemas,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}],
        }


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
