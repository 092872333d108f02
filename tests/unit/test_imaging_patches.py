"""The listener's patches of pynetdicom: checked against the version installed, then all
applied or none, and never left half-applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import dimse_messages
from structlog.testing import capture_logs

from services.imaging import patches
from services.imaging.spool import Spool
from tests.integration.unpatched_imaging import with_one_missing_name


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    """A spool, and pynetdicom put back as it was afterwards (other tests expect it stock)."""
    stock = patches.snapshot()
    spool = Spool(tmp_path)
    yield spool
    spool.stop()
    patches.restore(stock)
    from services.imaging import responses

    responses.uninstall()


def test_every_patch_fits_the_installed_pynetdicom() -> None:
    verdicts = patches.check()
    assert [(v.patch, v.misfits) for v in verdicts] == [
        ("reactor", ()),
        ("responses", ()),
        ("spool", ()),
    ]


def test_all_patches_are_applied_when_all_fit(spool: Spool) -> None:
    from services.imaging import reactor

    before = patches.snapshot()
    with capture_logs() as logs:
        assert patches.apply(spool) is True
    after = patches.snapshot()
    assert [t for t in before if after[t] is before[t]] == []  # every target was replaced
    assert reactor.installed()
    assert dimse_messages.NamedTemporaryFile == spool.take  # type: ignore[attr-defined]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == []
    assert patches.check() == [patches.Verdict(p.name, ()) for p in patches.PATCHES]  # again


@pytest.mark.parametrize("failing", [p.name for p in patches.PATCHES])
def test_one_patch_that_does_not_fit_leaves_every_patch_out_and_is_named(
    spool: Spool, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    monkeypatch.setattr(patches, "PATCHES", with_one_missing_name(failing))
    before = patches.snapshot()
    with capture_logs() as logs:
        assert patches.apply(spool) is False
    after = patches.snapshot()
    assert [t for t in before if after[t] is not before[t]] == []  # nothing replaced
    assert list(spool.directory.iterdir()) == []  # the spool never started
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["patch"] == failing
    assert "_renamed" in warnings[0]["found"]
    assert "has no" in warnings[0]["found"]


def test_a_patch_that_fails_while_being_applied_undoes_the_ones_before_it(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise RuntimeError("cannot install")

    before = patches.snapshot()
    monkeypatch.setattr(Spool, "install", broken)  # reactor and responses go in first
    with pytest.raises(RuntimeError, match="cannot install"):
        patches.apply(spool)
    after = patches.snapshot()
    assert [t for t in before if after[t] is not before[t]] == []


def test_a_name_of_the_wrong_shape_is_reported_with_what_was_found() -> None:
    wrong = patches.Expect(
        "pynetdicom.dimse:DIMSEServiceProvider.send_msg", patches.Function(("self", "message"))
    )
    assert wrong.misfit() == (
        "pynetdicom.dimse:DIMSEServiceProvider.send_msg is a function"
        " (self, primitive, context_id), not a function (self, message)"
    )
    unread = patches.Expect(
        "pynetdicom.dul:DULServiceProvider.run_reactor",
        patches.Function(("self",), reads=("nap",)),
    )
    assert unread.misfit() == (
        "pynetdicom.dul:DULServiceProvider.run_reactor is a function (self) that never reads"
        " nap, not a function (self) reading nap"
    )


def test_the_verdicts_can_be_printed_without_applying_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = patches.snapshot()
    assert patches.main() == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:] == [
        "reactor: fits",
        "responses: fits",
        "spool: fits",
        "all patches would be applied",
    ]
    after = patches.snapshot()
    assert [t for t in before if after[t] is not before[t]] == []
