"""What every benchmark hands back: its figures, each with the baseline measured in the same
run and the target it is judged against.

Each bench module has `run(argv) -> list[Measure]` (it prints its own detail as it goes, as
when run alone) and `QUICK`, the arguments of its quick form. `python -m bench` runs them and
prints one table of the measures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    name: str
    value: float
    unit: str  # "x": a ratio to the baseline; else "events/s", "ms", "s", "MB" ...
    baseline: str = ""  # the baseline as measured in this run, e.g. "raw consume 24,100 msg/s"
    target: float | None = None  # None: reported, not judged
    at_most: bool = False  # the target is a ceiling (a latency, a size), not a floor

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if math.isnan(self.value):
            return False
        return self.value <= self.target if self.at_most else self.value >= self.target

    @property
    def verdict(self) -> str:
        return {True: "met", False: "missed", None: "-"}[self.met]

    def value_text(self) -> str:
        return figure(self.value, self.unit)

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        goal = f"x{self.target:g}" if self.unit == "x" else f"{self.target:,g} {self.unit}"
        return f"{'<=' if self.at_most else '>='} {goal}"


def figure(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "x":
        return f"x{value:.2f}" if value < 10 else f"x{value:.1f}"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 1 else f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f} {unit}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(rows: list[tuple[str, ...]]) -> str:
    """rows of (measure, value, baseline, target, verdict), as aligned text."""
    head = ("measure", "value", "baseline (same run)", "target", "verdict")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    lines = []
    for k, r in enumerate([head, *rows]):
        cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].ljust(widths[2])]
        cells += [r[3].ljust(widths[3]), r[4]]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
