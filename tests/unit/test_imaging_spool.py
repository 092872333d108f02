"""Files prepared ahead for incoming objects: handed out, never left behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from services.imaging.spool import PREFIX, Spool


def test_prepared_files_are_handed_out_and_unused_ones_removed_at_stop(tmp_path: Path) -> None:
    stale = tmp_path / f"{PREFIX}w0-oldrun-3.dcm"
    stale.write_bytes(b"")  # an earlier run was killed
    sibling = tmp_path / f"{PREFIX}w1-itsrun-0.dcm"
    sibling.write_bytes(b"")  # another listener process's, in use
    spool = Spool(tmp_path, ready=4, worker=0)
    spool.start()
    assert not stale.exists()
    assert sibling.exists()
    files = []
    for _ in range(10):
        f = spool.take(delete=False, mode="wb", suffix=".dcm")
        f.write(b"DICM")
        f.file.flush()
        f.close()
        files.append(Path(f.name))
    assert all(p.parent == tmp_path and p.read_bytes() == b"DICM" for p in files)
    assert len(set(files)) == 10  # never the same file twice
    assert spool.taken + spool.fallbacks == 10
    spool.stop()
    left = sorted(p for p in tmp_path.iterdir() if p not in files)
    assert left == [sibling]  # the prepared-but-unused ones went with the spool


def test_concurrent_takers_never_share_a_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path, ready=2)
    spool.start()
    names: list[str] = []
    lock = threading.Lock()

    def take_many() -> None:
        for _ in range(50):
            f = spool.take()
            f.close()
            with lock:
                names.append(f.name)

    threads = [threading.Thread(target=take_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spool.stop()
    assert len(names) == len(set(names)) == 200


def test_a_prepared_file_that_went_missing_falls_back_to_a_new_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path, ready=1)
    spool.start()
    deadline = time.monotonic() + 10
    while not list(tmp_path.glob(f"{PREFIX}*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    spool._stop.set()  # no more prepared files from here on
    spool._thread.join(5)
    for prepared in tmp_path.glob(f"{PREFIX}*"):
        prepared.unlink()  # removed under the listener (a clean-up job, say)
    f = spool.take(delete=False, mode="wb", suffix=".dcm")
    f.write(b"DICM")
    f.close()
    assert Path(f.name).read_bytes() == b"DICM"  # the object still has a file
    assert spool.fallbacks == 1
