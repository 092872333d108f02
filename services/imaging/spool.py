"""Files for incoming objects, created ahead of time so no C-STORE waits for a file to exist.

pynetdicom streams each received dataset into a fresh temporary file. Creating a file is cheap
on most local disks, but not everywhere: on this development machine a create under /work takes
about 0.8 ms (0.03 ms under /tmp), and on network or scanned filesystems it can be worse. Here
a background thread keeps a few empty files ready in the incoming directory; pynetdicom's
`NamedTemporaryFile` is swapped for `Spool.take`, which hands out one of them (opening an
existing file is cheap) and falls back to a real temporary file when none is ready.

Leftover spool files from an earlier run are removed at start; an object is only ever kept by
linking its file into the store, so an unused spool file is never mistaken for one.
"""

from __future__ import annotations

import itertools
import os
import queue
import tempfile
import threading
import uuid
from pathlib import Path
from typing import IO, Any

import structlog

log = structlog.get_logger("imaging")

PREFIX = "spool-"


class _SpoolFile:
    """What pynetdicom needs of a NamedTemporaryFile: name, write, file.flush, close."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.file: IO[bytes] = open(path, "r+b")  # noqa: SIM115 - pynetdicom closes it

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def close(self) -> None:
        self.file.close()


class Spool:
    def __init__(self, directory: Path, ready: int = 8, worker: int = 0) -> None:
        self.directory = directory
        self.prefix = f"{PREFIX}w{worker}-"  # each listener process clears only its own
        self._ready: queue.Queue[Path] = queue.Queue(maxsize=ready)
        self._stop = threading.Event()
        self._run = uuid.uuid4().hex[:8]
        self._numbers = itertools.count()
        self._thread = threading.Thread(target=self._fill, name="imaging-spool", daemon=True)
        self.taken = self.fallbacks = 0

    def start(self) -> None:
        for stale in self.directory.glob(f"{self.prefix}*"):
            stale.unlink(missing_ok=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread.ident is None:
            return  # never started: the listener runs without its patches (patches.py)
        log.info("spool stopped", taken=self.taken, fallbacks=self.fallbacks)
        self._stop.set()
        self._thread.join(5)
        while True:
            try:
                self._ready.get_nowait().unlink(missing_ok=True)
            except queue.Empty:
                break

    def _fill(self) -> None:
        while not self._stop.is_set():
            path = self.directory / f"{self.prefix}{self._run}-{next(self._numbers)}.dcm"
            try:
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError as exc:
                log.warning("cannot prepare a file for incoming objects", error=str(exc))
                self._stop.wait(1.0)
                continue
            while True:  # wait while enough are ready
                try:
                    self._ready.put(path, timeout=0.2)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        path.unlink(missing_ok=True)
                        return

    def take(self, *_args: Any, **_kwargs: Any) -> Any:
        """Stands in for NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")."""
        try:
            path = self._ready.get_nowait()
        except queue.Empty:
            path = None
        if path is not None:
            try:
                spooled = _SpoolFile(path)
                self.taken += 1
                return spooled
            except OSError as exc:  # gone or unreadable: never leave it behind
                log.warning("a prepared file could not be opened", error=str(exc))
                path.unlink(missing_ok=True)
        self.fallbacks += 1
        return tempfile.NamedTemporaryFile(
            delete=False, mode="wb", suffix=".dcm", dir=self.directory
        )

    def install(self) -> None:
        """Make pynetdicom stream received datasets into this spool's files (patches.py checks
        first that pynetdicom still makes them the way this expects)."""
        from pynetdicom import dimse_messages

        dimse_messages.NamedTemporaryFile = self.take  # type: ignore[attr-defined]
