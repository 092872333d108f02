"""`python -m services.imaging`: the DICOM listener (C-ECHO, C-STORE) and its outbox relay.

pynetdicom runs every association's Python on one core (the GIL), so the listener scales past
one core with processes: `PROCTRAIL_DICOM_WORKERS` (default: one per CPU, at most 4). With
more than one, this process binds the port and starts that many workers
(`--worker N --listen-fd FD`) that all accept on the same socket and share one store (SQLite in
WAL mode, objects on disk). It restarts a worker that dies and stops them all on SIGINT or
SIGTERM. A worker whose parent is gone stops by itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import structlog

from services.imaging.config import ImagingSettings
from services.imaging.store import ImagingStore
from shared.config import Settings
from shared.metrics import forget_process, fresh_multiprocess_dir
from shared.runtime import boot, exit_on_settings_error, serve_metrics, stop_signals, wait_for_stop

log = structlog.get_logger("imaging")

STOP_GRACE_S = 20.0
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0


def main() -> None:
    settings = boot("imaging")
    with exit_on_settings_error("imaging"):
        imaging = ImagingSettings.from_env()
    args = sys.argv[1:]
    if args[:1] == ["--worker"] and args[2:3] == ["--listen-fd"] and len(args) == 4:
        run_worker(settings, imaging, int(args[1]), int(args[3]))
    elif args:
        raise SystemExit("usage: python -m services.imaging [--worker N --listen-fd FD]")
    elif imaging.workers == 1:
        run_worker(settings, imaging, 0, None)
    else:
        run_parent(settings, imaging)


def run_worker(
    settings: Settings, imaging: ImagingSettings, worker: int, listen_fd: int | None
) -> None:
    # Imported here: the parent only binds and watches, and stays small (the memory budget
    # of a 500 MB receive counts every process of the listener).
    from services.imaging.index import ProcedureIndex
    from services.imaging.listener import Listener
    from services.imaging.load import LoadBoard
    from services.imaging.relay import Relay
    from shared.bus.topology import Q_IMAGING
    from shared.runtime import make_bus
    from shared.storage import UNAVAILABLE

    store = ImagingStore(settings.service_dir("imaging"), worker, imaging.workers)
    bus = make_bus(settings, "imaging")
    relay = Relay(bus, store, settings.publish_timeout_s)
    bus.subscribe(Q_IMAGING, ProcedureIndex(store, relay.wake).handle, transient=UNAVAILABLE)
    bus.start()
    relay.start()
    listener = Listener(settings, imaging, store, relay)
    board = None
    if listen_fd is not None:
        board = LoadBoard(_board_path(settings), imaging.workers, worker)
    metrics = serve_metrics(settings, "imaging") if listen_fd is None else None
    server = listener.serve(settings.dicom_addr, listen_fd, board)
    log.info(
        "listening",
        addr=f"{settings.dicom_addr[0]}:{settings.dicom_addr[1]}",
        ae_title=settings.dicom_ae_title,
        tls=imaging.tls_cert is not None,
        worker=worker,
        workers=imaging.workers,
    )
    if listen_fd is not None:
        _stop_when_orphaned()
    wait_for_stop()
    server.shutdown()
    if metrics is not None:
        metrics.stop()
    listener.close()
    relay.stop()
    bus.close()
    store.close()
    if board is not None:
        board.close()


def _board_path(settings: Settings) -> Path:
    return settings.service_dir("imaging") / "workers.load"


def _stop_when_orphaned() -> None:
    """A worker outlives a parent killed with SIGKILL; it then stops itself (SIGTERM)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("the listener's parent process is gone: stopping this worker")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="imaging-orphan-watch", daemon=True).start()


def run_parent(settings: Settings, imaging: ImagingSettings) -> None:
    from services.imaging.load import LoadBoard

    ImagingStore(settings.service_dir("imaging")).close()  # schema once, before workers race
    LoadBoard.create(_board_path(settings), imaging.workers)
    sock = socket.create_server(settings.dicom_addr, backlog=128)
    sock.set_inheritable(True)
    stop = stop_signals()
    # The workers count into files here; this process serves their sum.
    counted = fresh_multiprocess_dir(settings.service_dir("imaging") / "metrics")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(counted)}
    metrics = serve_metrics(settings, "imaging", counted)

    def spawn(worker: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "services.imaging", "--worker", str(worker),
                   "--listen-fd", str(sock.fileno())]  # fmt: skip
        return subprocess.Popen(command, pass_fds=(sock.fileno(),), env=env)

    workers = {n: spawn(n) for n in range(imaging.workers)}
    started = dict.fromkeys(workers, time.monotonic())
    restarts = dict.fromkeys(workers, 0)
    due: dict[int, float] = {}  # a dead worker -> when it starts again
    log.info("listener workers started", workers=imaging.workers,
             pids=[p.pid for p in workers.values()])  # fmt: skip
    while not stop.wait(0.3):
        now = time.monotonic()
        for n, process in workers.items():
            if n in due:
                if now >= due[n]:
                    del due[n]
                    workers[n], started[n] = spawn(n), now
                continue
            code = process.poll()
            if code is None:
                continue
            forget_process(process.pid, counted)
            if now - started[n] > HEALTHY_AFTER_S:
                restarts[n] = 0  # it had run well: back-off starts over
            restarts[n] += 1
            backoff = min(2.0 ** (restarts[n] - 1), MAX_BACKOFF_S)
            log.error("listener worker exited; restarting", worker=n, exit_code=code,
                      restarts=restarts[n], backoff_s=backoff)  # fmt: skip
            due[n] = now + backoff  # the others are watched meanwhile
    for process in workers.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for n, process in workers.items():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("listener worker ignored SIGTERM; killed", worker=n)
            process.kill()
            process.wait()
    sock.close()
    if metrics is not None:
        metrics.stop()


if __name__ == "__main__":
    main()
