"""Settings models read from PROCTRAIL_* variables, and their errors told in one line.

Each model is a pydantic-settings `BaseSettings`: a field, its type and its default are written
once, and the field's variable is PROCTRAIL_<FIELD> (or its alias). `Model()` is the defaults
and what it is given, nothing else; `Model.from_env()` reads the environment (or the mapping a
test passes) and raises `SettingsError` for a value that does not fit, naming the variable and
what it expects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Self

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PREFIX = "PROCTRAIL_"

# What a variable must be, by the kind of pydantic error its value raised.
_EXPECTED = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "greater_than": "a number above {gt:g}",
    "greater_than_equal": "a number of at least {ge:g}",
    "less_than": "a number below {lt:g}",
    "less_than_equal": "a number of at most {le:g}",
    "literal_error": "{expected}",
}


def _none_if_empty(value: object) -> object:
    return None if value == "" else value


# Unset or empty: None.
OptionalText = Annotated[str | None, BeforeValidator(_none_if_empty)]
OptionalPath = Annotated[Path | None, BeforeValidator(_none_if_empty)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class SettingsError(ValueError):
    """The environment sets something wrong; the message is one line naming each variable."""


class EnvSettings(BaseSettings):
    """Base of proctrail's settings models (see the module's docstring)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, frozen=True, extra="forbid", validate_by_name=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment is read by from_env alone

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings `env` (default: os.environ) gives; SettingsError when one is wrong."""
        given = _Environment(cls, os.environ if env is None else env)
        try:
            return cls(**given())
        except ValidationError as exc:
            raise SettingsError("; ".join(_explain(cls, e) for e in exc.errors())) from None

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each field's variable, by field name: its alias, or the prefix and its name."""
        prefix = str(cls.model_config.get("env_prefix", PREFIX))
        return {
            name: field.validation_alias.upper()
            if isinstance(field.validation_alias, str)
            else (prefix + name).upper()
            for name, field in cls.model_fields.items()
        }


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source, over the mapping from_env was given."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._given = env  # read by super().__init__, through _load_env_vars
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.case_sensitive:
            return dict(self._given)
        return {name.lower(): value for name, value in self._given.items()}


def _explain(cls: type[EnvSettings], error: ErrorDetails) -> str:
    """One error as '<VARIABLE> must be <what it expects>, not <value>'."""
    key = str(error["loc"][0])  # a field's name, or the alias (its variable) it was given by
    variable = cls.variables().get(key, key.upper())
    ctx = error.get("ctx", {})
    if error["type"] == "value_error":
        expected = str(ctx["error"])
    elif error["type"] in _EXPECTED:
        expected = _EXPECTED[error["type"]].format(**ctx)
    else:
        expected = error["msg"][0].lower() + error["msg"][1:]
    if variable.endswith("_URL"):  # a URL may carry a password: never echoed
        return f"{variable} must be {expected}"
    return f"{variable} must be {expected}, not {error['input']!r}"
