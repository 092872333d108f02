"""The listener workers' load board: who is serving more connections than a sibling."""

from __future__ import annotations

from pathlib import Path

from services.imaging.load import LoadBoard


def test_a_worker_with_more_connections_than_a_sibling_knows_it(tmp_path: Path) -> None:
    path = tmp_path / "workers.load"
    LoadBoard.create(path, 2)
    first, second = LoadBoard(path, 2, 0), LoadBoard(path, 2, 1)
    assert not first.busier_than_a_sibling()
    assert not second.busier_than_a_sibling()
    first.add(+1)
    assert first.busier_than_a_sibling()  # so the next connection is left for the second
    assert not second.busier_than_a_sibling()
    second.add(+1)
    assert not first.busier_than_a_sibling()
    first.add(-1)
    first.add(-1)  # never below zero, whatever a crash left unbalanced
    assert first.mine() == 0
    second.close()
    restarted = LoadBoard(path, 2, 1)  # a replacement worker starts from nothing
    assert restarted.mine() == 0
    restarted.close()
    first.close()
