"""The local policy the clinical rules follow, configurable per clinic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.config import Settings


@dataclass(frozen=True)
class Policy:
    """Intervals, windows and ranges the clock-driven and custody rules check against."""

    vitals_interval: timedelta = timedelta(minutes=5)
    needle_window: timedelta = timedelta(minutes=10)  # confirming images this near a placement
    sae_warning: timedelta = timedelta(days=2)  # sae_report_due this long before the deadline
    custody_c: tuple[float, float] = (2.0, 25.0)  # a hand-off outside this range is alerted

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy a service's settings (PROCTRAIL_VITALS_INTERVAL_MIN, ...) describe."""
        return cls(
            vitals_interval=timedelta(minutes=settings.vitals_interval_min),
            needle_window=timedelta(minutes=settings.needle_window_min),
            sae_warning=timedelta(hours=settings.sae_warning_h),
            custody_c=(settings.custody_min_c, settings.custody_max_c),
        )
