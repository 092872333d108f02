"""One benchmark in a process of its own (spawned: nothing of the previous one lingers), its
measures sent back over a pipe. Not in bench/__main__.py: a spawned child does not import
the parent's `__main__` module of a package, so its target must live elsewhere."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import time
import traceback
from multiprocessing.connection import Connection

from bench._measure import Measure

TIMEOUT_S = 3600.0  # one benchmark's limit (the full dicom_receive takes minutes)


def _child(name: str, quick: bool, out: Connection) -> None:
    try:
        module = importlib.import_module(f"bench.{name}")
        measures = module.run(list(module.QUICK) if quick else [])
        out.send(("ok", measures))
    except BaseException as exc:  # SystemExit too: a bench says why it stopped that way
        traceback.print_exc()
        out.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        out.close()


def run_one(name: str, quick: bool) -> tuple[list[Measure], str | None, float]:
    """(measures, why it did not finish or None, seconds), run in a spawned process."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(name, quick, send), name=f"bench-{name}")
    start = time.monotonic()
    child.start()
    send.close()
    result: tuple[str, object] = ("error", "exited without a result")
    if receive.poll(TIMEOUT_S):
        with contextlib.suppress(EOFError):  # it died before sending
            result = receive.recv()
    else:
        result = ("error", f"no result within {TIMEOUT_S:.0f} s")
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
    if result[0] == "ok" and child.exitcode != 0:
        result = ("error", f"exit status {child.exitcode}")
    elapsed = time.monotonic() - start
    if result[0] == "ok":
        measures = result[1]
        assert isinstance(measures, list)
        return measures, None, elapsed
    return [], str(result[1]), elapsed
