"""`python -m bench`: one table of every benchmark's measures, and an exit status that says
whether every target was met. The benchmarks themselves are stood in for here."""

from __future__ import annotations

import importlib
from pathlib import Path

import orjson
import pytest

from bench._measure import Measure

runner = importlib.import_module("bench.__main__")


def test_a_floor_is_met_at_or_above_its_target_and_a_ceiling_at_or_below() -> None:
    assert Measure("ratio", 0.5, "x", target=0.5).verdict == "met"
    assert Measure("ratio", 0.49, "x", target=0.5).verdict == "missed"
    assert Measure("lag", 1000, "ms", target=1000, at_most=True).verdict == "met"
    assert Measure("lag", 1001, "ms", target=1000, at_most=True).verdict == "missed"
    assert Measure("lag", float("nan"), "ms", target=1000, at_most=True).verdict == "missed"
    assert Measure("ratio", 3.0, "x").verdict == "-"


def test_values_and_targets_read_as_figures_with_their_units() -> None:
    measure = Measure("audit path", 12_345.6, "events/s", target=10_000)
    assert (measure.value_text(), measure.target_text()) == (
        "12,346 events/s",
        ">= 10,000 events/s",
    )
    ratio = Measure("audit / raw", 0.5749, "x", target=0.5)
    assert (ratio.value_text(), ratio.target_text()) == ("x0.57", ">= x0.5")
    lag = Measure("lag", 12.34, "ms", target=1000, at_most=True)
    assert (lag.value_text(), lag.target_text()) == ("12.3 ms", "<= 1,000 ms")


RESULTS = {
    "fast": ([Measure("rate", 2.0, "x", "slow 10 msg/s", 1.5)], None, 1.0),
    "slow": ([Measure("rate", 1.2, "x", "slow 10 msg/s", 1.5)], None, 1.0),
    "broken": ([], "SystemExit: DCMTK's storescu is not on PATH", 0.1),
}


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ran: list[str] = []

    def run_one(name: str, quick: bool) -> tuple[list[Measure], str | None, float]:
        ran.append(name)
        return RESULTS[name]

    monkeypatch.setattr(runner, "benchmarks", lambda: sorted(RESULTS))
    monkeypatch.setattr(runner, "run_one", run_one)
    return ran


def test_every_target_met_exits_0(stand_ins: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["fast"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fast:")]
    assert row[0].split() == ["fast:", "rate", "x2.00", "slow", "10", "msg/s", ">=", "x1.5", "met"]


def test_a_missed_target_shows_as_missed_and_exits_1(
    stand_ins: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.main(["fast", "slow"]) == 1
    out = capsys.readouterr().out
    assert [
        line.split()[-1] for line in out.splitlines() if line.startswith(("fast:", "slow:"))
    ] == [
        "met",
        "missed",
    ]
    assert "1 met, 1 missed, 0 did not finish" in out


def test_a_benchmark_that_did_not_finish_is_a_row_of_its_own_and_exits_1(
    stand_ins: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.main([]) == 1
    assert stand_ins == ["broken", "fast", "slow"]
    out = capsys.readouterr().out
    assert "broken: did not finish (SystemExit: DCMTK's storescu is not on PATH)" in out


def test_a_name_that_is_no_benchmark_runs_nothing_and_exits_2(
    stand_ins: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.main(["fast", "nope"]) == 2
    assert stand_ins == []
    assert "not a benchmark: nope" in capsys.readouterr().out


def test_every_module_of_bench_is_a_benchmark_the_set_runs() -> None:
    for name in runner.benchmarks():
        module = importlib.import_module(f"bench.{name}")
        assert callable(module.run), name
        assert all(isinstance(arg, str) for arg in module.QUICK), name


def test_the_measures_can_be_kept_as_json_too(stand_ins: list[str], tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert runner.main(["slow", "broken", "--json", str(out)]) == 1
    assert orjson.loads(out.read_bytes()) == [
        {"bench": "broken", "error": "SystemExit: DCMTK's storescu is not on PATH",
         "verdict": "error"},
        {"bench": "slow", "name": "rate", "value": 1.2, "unit": "x", "baseline": "slow 10 msg/s",
         "target": 1.5, "at_most": False, "verdict": "missed"},
    ]  # fmt: skip
