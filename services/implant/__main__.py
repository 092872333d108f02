"""`python -m services.implant`: implant-phase and lab events; stamps and forwards each to audit."""

from __future__ import annotations

from shared.bus.topology import Q_IMPLANT
from shared.phase import PhaseService
from shared.runtime import boot, make_bus, wait_for_stop


def main() -> None:
    settings = boot("implant")
    bus = make_bus(settings, "implant")
    service = PhaseService("implant", ("implant", "lab"), bus, settings.publish_timeout_s)
    bus.subscribe(Q_IMPLANT, service.handle)
    bus.start()
    wait_for_stop()
    bus.close()


if __name__ == "__main__":
    main()
