"""Sample identifiers: a pluggable scheme, by default one that carries a check character and
nothing that identifies the patient.

The default (`mod37-2`) is a prefix, ten random characters from 0-9 and A-Z, and an
ISO/IEC 7064 MOD 37-2 check character (the one ISBT 128 uses on blood and tissue labels), so
a mistyped or misscanned label is caught at the bedside. The random part holds no name,
record number or date. `PROCTRAIL_SAMPLE_ID_SCHEME=none` accepts any identifier, for a lab
whose labels follow its own system.
"""

from __future__ import annotations

import secrets
from typing import Protocol

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CHECK_ALPHABET = _ALPHABET + "*"


class SampleIdScheme(Protocol):
    name: str

    def new(self) -> str: ...

    def problem(self, sample_id: str) -> str | None:
        """Why `sample_id` is not an identifier of this scheme; None when it is."""
        ...


def mod37_2(data: str) -> str:
    """The ISO/IEC 7064 MOD 37-2 check character of `data` (0-9, A-Z)."""
    total = 0
    for char in data:
        total = ((total + _ALPHABET.index(char)) * 2) % 37
    return _CHECK_ALPHABET[(38 - total) % 37]


class Mod37Scheme:
    name = "mod37-2"
    BODY = 10

    def __init__(self, prefix: str = "S") -> None:
        if not prefix or any(c not in _ALPHABET for c in prefix):
            raise ValueError("a sample id prefix is letters and digits")
        self.prefix = prefix

    def new(self) -> str:
        body = "".join(secrets.choice(_ALPHABET) for _ in range(self.BODY))
        data = self.prefix + body
        return data + mod37_2(data)

    def problem(self, sample_id: str) -> str | None:
        text = sample_id.strip().upper()
        size = len(self.prefix) + self.BODY + 1
        if len(text) != size or not text.startswith(self.prefix):
            return f"is not {self.prefix} followed by {self.BODY} characters and a check character"
        data, check = text[:-1], text[-1]
        if any(c not in _ALPHABET for c in data):
            return "may hold only the letters A-Z and digits before its check character"
        if mod37_2(data) != check:
            return "has a check character that does not match (mistyped or misscanned?)"
        return None


class AnyIdScheme:
    name = "none"

    def new(self) -> str:
        return "S" + secrets.token_hex(6).upper()

    def problem(self, sample_id: str) -> str | None:
        return None


def scheme(name: str) -> SampleIdScheme:
    schemes: dict[str, SampleIdScheme] = {"mod37-2": Mod37Scheme(), "none": AnyIdScheme()}
    try:
        return schemes[name]
    except KeyError:
        raise ValueError(f"unknown sample id scheme {name!r}: {', '.join(schemes)}") from None
