"""The shared load board of the listener's worker processes (see services/imaging/__main__.py)."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path


class LoadBoard:
    """How many connections each listener worker is serving: one 4-byte slot per worker in a
    small file the parent creates, mapped by every worker. A worker writes only its own slot."""

    def __init__(self, path: Path, workers: int, worker: int) -> None:
        self.worker, self.workers = worker, workers
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 4 * workers)
        self._set(0)  # a restarted worker starts empty, whatever its predecessor left

    @staticmethod
    def create(path: Path, workers: int) -> None:
        path.write_bytes(bytes(4 * workers))

    def _set(self, value: int) -> None:
        struct.pack_into("<i", self._map, 4 * self.worker, value)

    def mine(self) -> int:
        return int(struct.unpack_from("<i", self._map, 4 * self.worker)[0])

    def add(self, delta: int) -> None:
        self._set(max(0, self.mine() + delta))

    def busier_than_a_sibling(self) -> bool:
        loads = struct.unpack_from(f"<{self.workers}i", self._map, 0)
        return self.mine() > int(min(loads))

    def close(self) -> None:
        self._map.close()
        self._file.close()
