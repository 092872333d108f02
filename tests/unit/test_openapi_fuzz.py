"""schemathesis over the OpenAPI documents of bedside and audit (in process, on the in-memory
bus): whatever it sends, valid or not, no answer is a server error, every error is a
problem+json naming its status, and every answer is as the document says (its status, media
type, headers and body schema documented for the operation).

Each operation gets PROCTRAIL_SCHEMATHESIS_EXAMPLES (25) valid and as many invalid requests in
CI; the long form is `PROCTRAIL_SCHEMATHESIS_EXAMPLES=1000 ./dev test
tests/unit/test_openapi_fuzz.py`. (schemathesis drives the requests through its Python API:
its pytest plugin does not run under this pytest.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.audit.api import AuditApi
from services.audit.api import create_app as create_audit_app
from services.bedside.api import Bedside
from services.bedside.api import create_app as create_bedside_app
from shared.http import PROBLEM

EXAMPLES = int(os.environ.get("PROCTRAIL_SCHEMATHESIS_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                database=None)  # fmt: skip

Bearer = Callable[..., dict[str, str]]
AS_DOCUMENTED = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def answered_well(response: Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith(PROBLEM), response.text
        assert orjson.loads(response.content)["status"] == response.status_code


def fuzz(app: Any, headers: dict[str, str]) -> dict[str, int]:
    """Every operation of the app's document, valid and invalid requests; how many each."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    sent: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:
            try:
                run(operation.as_strategy(generation_mode=mode), headers, sent,
                    f"{operation.label} {mode.value}")  # fmt: skip
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing in it to get wrong
    return sent


def run(strategy: Any, headers: dict[str, str], sent: dict[str, int], label: str) -> None:
    @FUZZ
    @given(case=strategy)
    def one(case: Any) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=AS_DOCUMENTED, headers=headers)
        answered_well(response)
        sent[label] = sent.get(label, 0) + 1

    one()


@pytest.mark.parametrize("role", ["admin", "nurse"])
def test_bedside_never_fails_and_every_error_is_a_problem(
    bedside: Bedside, bearer: Bearer, role: str
) -> None:
    sent = fuzz(create_bedside_app(bedside), bearer(role))
    assert any(label.startswith("POST /v1/events") for label in sent)
    assert sum(sent.values()) >= 8 * EXAMPLES  # it really sent (operations by modes)


@pytest.mark.parametrize("role", ["admin", "compliance"])
def test_audit_never_fails_and_every_error_is_a_problem(
    audit_api: AuditApi, bearer: Bearer, role: str
) -> None:
    sent = fuzz(create_audit_app(audit_api), bearer(role))
    assert any(label.startswith("GET /v1/audit/entries") for label in sent)
    assert sum(sent.values()) >= 8 * EXAMPLES
