"""Bearer tokens: shown once, stored only as a SHA-256, each with one of the contract's roles."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shared.auth import Principal, TokenStore
from shared.events import ROLES


def test_the_roles_are_those_of_the_contract_and_a_metrics_scraper() -> None:
    assert ROLES == ("nurse", "physician", "lab", "compliance", "admin", "monitor")


def test_a_created_token_looks_up_to_its_user_and_role(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token = store.create("nurse", "rn-lee")

    assert token.startswith("pt_")
    assert store.lookup(token) == Principal(user="rn-lee", role="nurse")
    store.close()


def test_a_token_still_works_after_the_store_is_reopened(tmp_path: Path) -> None:
    first = TokenStore(tmp_path)
    token = first.create("compliance", "co-diaz")
    first.close()

    second = TokenStore(tmp_path)
    assert second.lookup(token) == Principal(user="co-diaz", role="compliance")
    second.close()


def test_an_unknown_or_altered_token_is_not_recognised(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token = store.create("physician", "dr-khan")

    assert store.lookup("pt_not-a-token") is None
    assert store.lookup(token[:-1]) is None
    assert store.lookup("") is None
    store.close()


def test_two_tokens_for_the_same_user_are_different(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)

    assert store.create("nurse", "rn-lee") != store.create("nurse", "rn-lee")
    store.close()


def test_the_token_itself_is_never_written_to_disk_only_its_sha256(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token = store.create("admin", "it-ops")
    store.close()

    on_disk = b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()) if p.is_file())
    assert (tmp_path / "tokens.sqlite3").exists()
    assert token.encode() not in on_disk
    assert token.removeprefix("pt_").encode() not in on_disk
    assert hashlib.sha256(token.encode()).hexdigest().encode() in on_disk


def test_an_unknown_role_is_refused_naming_the_roles(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)

    with pytest.raises(ValueError, match="unknown role 'surgeon'; roles are nurse, physician"):
        store.create("surgeon", "dr-khan")
    store.close()


def test_a_blank_user_is_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)

    with pytest.raises(ValueError, match="user must not be empty"):
        store.create("nurse", "   ")
    store.close()
