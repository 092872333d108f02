"""Wake pynetdicom's reactors when there is work, instead of letting them nap through it.

pynetdicom (3.0) runs two polling loops per association: the DUL thread reads PDUs from the
socket and sends queued ones, and the association thread takes decoded DIMSE messages off a
queue and runs our handler. Both sleep about a millisecond whenever a pass finds nothing to do,
so every small C-STORE waits for up to three such naps: for the request to be read, for the
handler to see it, for the response to be sent. On 39 kB CT objects that was a third of the
listener's time.

`install()` replaces the `time` module that pynetdicom.dul and pynetdicom.association see
with one whose `sleep`, when called from either reactor loop, returns as soon as there is
something to do and otherwise rechecks every 20 ms instead of every millisecond:

- on the association thread it waits on an event set whenever a DIMSE message or an ACSE
  primitive (release, abort) is queued for it;
- on the DUL thread it waits in `select` on the association's socket and on an eventfd that is
  signalled whenever a primitive is queued for sending.

Every other caller, and every other attribute of `time`, is passed through unchanged. What
no waker covers (another thread setting the loop's kill flag, the DUL thread dying) is seen at
the 20 ms recheck, which bounds how much later an association winds down.

The listener installs this through patches.py, which first checks every private pynetdicom
name used here (the two loops, their `time`, the queues and sockets the wakers watch).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import sys
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


# Only the two reactor loops wait on wakers; every other sleep in those modules (the delay in
# abort, the pause handshakes) stays a plain sleep.
_REACTOR_LOOPS = frozenset(
    (_association.Association._run_reactor.__code__, _dul.DULServiceProvider.run_reactor.__code__)
)
# What wakes a loop covers its work; what does not (another thread killing it, the DUL thread
# dying, timers of seconds) is seen at this recheck instead of every millisecond, so an idle
# association costs no CPU and no GIL hand-offs.
IDLE_RECHECK_S = 0.02

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
    waker = None
    if sys._getframe(1).f_code in _REACTOR_LOOPS:
        waker = _waker_for(threading.current_thread())
    if waker is None or seconds <= 0:
        _real_sleep(seconds)
    else:
        waker.wait(max(seconds, IDLE_RECHECK_S))


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
