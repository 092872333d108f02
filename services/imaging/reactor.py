"""Wake pynetdicom's reactors when there is work, instead of letting them nap through it.

pynetdicom (3.0) runs two polling loops per association: the DUL thread reads PDUs from the
socket and sends queued ones, and the association thread takes decoded DIMSE messages off a
queue and runs our handler. Both sleep about a millisecond whenever a pass finds nothing to do,
so every small C-STORE waits for up to three such naps: for the request to be read, for the
handler to see it, for the response to be sent. On 39 kB CT objects that was a third of the
listener's time.

`install()` replaces the `time` module that pynetdicom.dul and pynetdicom.association see
with one whose `sleep` returns as soon as there is something to do, and never later than the
sleep asked for, so nothing can be slower than stock:

- on the association thread it waits on an event set whenever a DIMSE message or an ACSE
  primitive (release, abort) is queued for it;
- on the DUL thread it waits in `select` on the association's socket and on an eventfd that is
  signalled whenever a primitive is queued for sending.

Every other caller, and every other attribute of `time`, is passed through unchanged.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import time as _time
import types
import weakref
from collections.abc import Callable
from typing import Any

from pynetdicom import association as _association
from pynetdicom import dul as _dul

_real_sleep = _time.sleep


class _Waker:
    """What one reactor thread waits on; `notify` may be called from any thread."""

    def wait(self, seconds: float) -> None:
        raise NotImplementedError

    def notify(self) -> None:
        raise NotImplementedError


class _EventWaker(_Waker):
    def __init__(self) -> None:
        self._event = threading.Event()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)
        self._event.clear()  # a notify after this is seen by the caller's next check

    def notify(self) -> None:
        self._event.set()


class _SocketWaker(_Waker):
    """Wakes on data from the peer or on a notify (an eventfd), whichever comes first."""

    def __init__(self, dul: Any) -> None:
        self._dul = dul
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        weakref.finalize(self, os.close, self._fd)

    def wait(self, seconds: float) -> None:
        sock = getattr(self._dul.socket, "socket", None)
        watched: list[Any] = [self._fd]
        if sock is not None and sock.fileno() >= 0:
            watched.append(sock)
        try:
            ready, _, _ = select.select(watched, [], [], seconds)
        except (OSError, ValueError):  # the socket closed under us: plain nap, as stock
            _real_sleep(seconds)
            return
        if self._fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._fd)

    def notify(self) -> None:
        with contextlib.suppress(OSError):  # closed during shutdown: the reactor is gone
            os.eventfd_write(self._fd, 1)


def _notify_on_put(q: queue.Queue[Any], waker: _Waker) -> None:
    """Make `q.put` also wake `waker` (an instance attribute: no queue is swapped)."""
    put: Callable[..., None] = q.put

    def put_and_wake(item: Any, block: bool = True, timeout: float | None = None) -> None:
        put(item, block, timeout)
        waker.notify()

    q.put = put_and_wake  # type: ignore[method-assign]


_lock = threading.Lock()
wakers_made = 0  # how many reactor threads got a waker; tests read it


def _waker_for(thread: threading.Thread) -> _Waker | None:
    waker: _Waker | None = getattr(thread, "_proctrail_waker", None)
    if waker is not None:
        return waker
    if isinstance(thread, _association.Association):
        waker = _EventWaker()
        _notify_on_put(thread.dimse.msg_queue, waker)
        _notify_on_put(thread.dul.to_user_queue, waker)
    elif isinstance(thread, _dul.DULServiceProvider):
        waker = _SocketWaker(thread)
        _notify_on_put(thread.to_provider_queue, waker)
    else:
        return None
    global wakers_made
    with _lock:
        wakers_made += 1
    setattr(thread, "_proctrail_waker", waker)  # noqa: B010 - a foreign class
    return waker


def _sleep(seconds: float) -> None:
    waker = _waker_for(threading.current_thread())
    if waker is None or seconds <= 0:
        _real_sleep(seconds)
    else:
        waker.wait(seconds)


class _WakingTime(types.ModuleType):
    """The `time` module, but with a `sleep` that wakes early when its reactor has work."""

    sleep = staticmethod(_sleep)

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


_WAKING_TIME = _WakingTime("time")


def install() -> None:
    """Patch pynetdicom's DUL and association reactors (idempotent)."""
    _dul.time = _WAKING_TIME  # type: ignore[attr-defined]
    _association.time = _WAKING_TIME  # type: ignore[attr-defined]


def installed() -> bool:
    return _dul.time is _WAKING_TIME and _association.time is _WAKING_TIME  # type: ignore[attr-defined]
