"""The local policy the clinical rules follow, configurable per clinic.

Its defaults are the settings' defaults (shared/config.py, where each is written once):
`Policy()` is the policy of a clinic that sets nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.config import Settings

_UNSET = Settings()  # the defaults only: a Settings built by hand never reads the environment


@dataclass(frozen=True)
class Policy:
    """Intervals, windows and ranges the clock-driven and custody rules check against."""

    vitals_interval: timedelta = timedelta(minutes=_UNSET.vitals_interval_min)
    needle_window: timedelta = timedelta(minutes=_UNSET.needle_window_min)  # confirming images
    sae_warning: timedelta = timedelta(hours=_UNSET.sae_warning_h)  # before a report deadline
    custody_c: tuple[float, float] = (_UNSET.custody_min_c, _UNSET.custody_max_c)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy a service's settings (PROCTRAIL_VITALS_INTERVAL_MIN, ...) describe."""
        return cls(
            vitals_interval=timedelta(minutes=settings.vitals_interval_min),
            needle_window=timedelta(minutes=settings.needle_window_min),
            sae_warning=timedelta(hours=settings.sae_warning_h),
            custody_c=(settings.custody_min_c, settings.custody_max_c),
        )
