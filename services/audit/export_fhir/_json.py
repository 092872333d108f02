"""FHIR JSON from the `fhir.resources` models, written faster than the library does it."""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache
from typing import Any

from fhir_core.fhirabstractmodel import FHIRAbstractModel


def plain(model: FHIRAbstractModel) -> dict[str, Any]:
    """The model as FHIR JSON, as the library's own serialiser writes it, ~3x faster.

    The library walks every field in Python for each of ~20 objects per event; this walks only
    the fields that are set. `test_export_formats` pins the output to the library's, byte for
    byte after parsing, and parses every bundle back with the library's models.
    """
    out: dict[str, Any] = {}
    if isinstance(model, FHIRAbstractModel) and model.__resource_type__ and _is_resource(model):
        out["resourceType"] = model.__resource_type__
    fields = type(model).model_fields
    for name, value in model.__dict__.items():
        if value is None or name == "fhir_comments" or (isinstance(value, list) and not value):
            continue
        out[fields[name].alias or name] = _plain_value(value)
    return out


def _plain_value(value: Any) -> Any:
    if isinstance(value, FHIRAbstractModel):
        return plain(value)
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


@lru_cache(maxsize=64)
def _resource_class(cls: type) -> bool:
    return any(base.__name__ == "Resource" for base in cls.__mro__)


def _is_resource(model: FHIRAbstractModel) -> bool:
    return _resource_class(type(model))
