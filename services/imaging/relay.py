"""The outbox relay: publishes what the listener made durable, in order, with confirms.

Woken after every stored object, it sends everything unsent, waits for the confirms and marks
those rows sent. If the broker is away it backs off and tries again; nothing is dropped, and a
row confirmed but not yet marked (a crash in between) is sent again — the ledger keeps one
entry per event_id.
"""

from __future__ import annotations

import threading
from concurrent.futures import TimeoutError as FutureTimeout

import structlog

from services.imaging.store import ImagingStore
from shared.bus import Bus, BusError

log = structlog.get_logger("imaging")


class Relay:
    def __init__(
        self, bus: Bus, store: ImagingStore, timeout_s: float, linger_s: float = 0.02
    ) -> None:
        self.bus = bus
        self.linger_s = linger_s
        self.store = store
        self.timeout_s = timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imaging-relay", daemon=True)

    def start(self) -> None:
        self._wake.set()  # whatever a previous run left
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        delay = 0.5
        waiting = False
        while not self._stop.is_set():
            if self.flush():
                if waiting:
                    log.info("outbox drained: the broker has every event again")
                delay, waiting = 0.5, False
                self._wake.wait()  # until the listener stores something (or stop)
                # Let a burst gather: one flush and one batch of confirms for many objects.
                self._stop.wait(self.linger_s)
            else:
                if not waiting:
                    log.warning("outbox holding events until the broker is back",
                                pending=len(self.store.unsent()))  # fmt: skip
                waiting = True
                self._wake.wait(delay)  # try again, backing off
                delay = min(delay * 2, 5.0)
            self._wake.clear()

    def flush(self) -> bool:
        """Send everything unsent; True when the outbox is empty afterwards."""
        while batch := self.store.unsent():
            if not self.bus.connected:
                return False
            sent: list[str] = []
            try:
                futures = [
                    (m.message_id,
                     self.bus.publish(m.exchange, m.routing_key, m.body, message_id=m.message_id))
                    for m in batch
                ]  # fmt: skip
                for message_id, future in futures:
                    future.result(self.timeout_s)
                    sent.append(message_id)
            except (BusError, FutureTimeout) as exc:
                log.warning("outbox relay paused", error=str(exc) or "no confirm in time")
                return False
            finally:
                self.store.mark_sent(sent)
        return True
