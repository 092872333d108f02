"""`python -m services.harvest`: harvest-phase events; stamps and forwards each to audit."""

from __future__ import annotations

from shared.bus.topology import Q_HARVEST
from shared.phase import PhaseService
from shared.runtime import boot, make_bus, wait_for_stop


def main() -> None:
    settings = boot("harvest")
    bus = make_bus(settings, "harvest")
    service = PhaseService("harvest", ("harvest",), bus, settings.publish_timeout_s)
    bus.subscribe(Q_HARVEST, service.handle)
    bus.start()
    wait_for_stop()
    bus.close()


if __name__ == "__main__":
    main()
