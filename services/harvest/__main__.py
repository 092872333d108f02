"""`python -m services.harvest`: harvest-phase events.

The clinical rules keep each procedure's state and raise alerts; every event, and every
alert, is stamped and forwarded to audit.
"""

from __future__ import annotations

from shared.bus.topology import Q_HARVEST
from shared.clinical.clock import SystemClock
from shared.clinical.policy import Policy
from shared.clinical.recorder import Recorder, Ticker
from shared.clinical.store import open_store
from shared.phase import PhaseService
from shared.runtime import boot, make_bus, serve_metrics, wait_for_stop


def main() -> None:
    settings = boot("harvest")
    store = open_store(settings.service_dir("harvest"), "harvest", settings.database_url)
    policy = Policy.from_settings(settings)
    recorder = Recorder("harvest", store, SystemClock(), policy)
    bus = make_bus(settings, "harvest")
    service = PhaseService("harvest", ("harvest",), bus, settings.publish_timeout_s, recorder)
    bus.subscribe(Q_HARVEST, service.handle)
    bus.start()
    ticker = Ticker(service.tick, settings.clock_tick_s)
    ticker.start()
    metrics = serve_metrics(settings, "harvest")
    wait_for_stop()
    if metrics is not None:
        metrics.stop()
    ticker.stop()
    bus.close()
    store.close()


if __name__ == "__main__":
    main()
