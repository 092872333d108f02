"""`proctrail up`: each service as its own OS process, restarted when it crashes.

Children run in their own sessions, so Ctrl-C reaches only the supervisor, which then asks
every child to stop (SIGTERM), waits, and kills what is left. Each child's output is
prefixed with its name.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import IO

import structlog

from services.imaging.config import ImagingSettings
from shared import logging as plogging
from shared.config import Settings

log = structlog.get_logger("proctrail")

# Sinks first, so nothing upstream waits on a consumer that is not there yet.
SERVICES = ("audit", "harvest", "implant", "imaging", "bedside")
STOP_GRACE_S = 15.0
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    pump: threading.Thread | None = field(default=None, repr=False)


class PrefixedOutput(io.TextIOBase):
    """One output shared by all processes; every line starts with its process's name."""

    def __init__(self, out: IO[bytes], width: int) -> None:
        self._out = out
        self._width = width
        self._lock = threading.Lock()

    def isatty(self) -> bool:
        return self._out.isatty()

    def line(self, name: str, data: bytes) -> None:
        with self._lock:
            self._out.write(f"{name:<{self._width}} | ".encode() + data)
            self._out.flush()

    def write(self, text: str) -> int:  # the supervisor's own log lines
        for part in text.splitlines(keepends=True):
            self.line("proctrail", part.encode())
        return len(text)


class Supervisor:
    def __init__(self, services: tuple[str, ...], env: dict[str, str], out: PrefixedOutput):
        self.children = [Child(name) for name in services]
        self.env = env
        self.out = out
        self._stop = threading.Event()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for child in self.children:
            self._start(child)
        while not self._stop.wait(0.3):
            for child in self.children:
                self._check(child)
        self._stop_all()
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stopping all services", signal=signal.Signals(signum).name)
        self._stop.set()

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{child.name}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        child.pump = threading.Thread(target=self._pump, args=(child, child.process), daemon=True)
        child.pump.start()
        log.info("started", child=child.name, pid=child.process.pid)

    def _check(self, child: Child) -> None:
        proc = child.process
        now = time.monotonic()
        if proc is None:
            if now >= child.next_start:
                self._start(child)
            return
        code = proc.poll()
        if code is None:
            return
        if now - child.started_at > HEALTHY_AFTER_S:
            child.restarts = 0
        delay = min(2.0**child.restarts, MAX_BACKOFF_S)
        child.restarts += 1
        child.process = None
        child.next_start = now + delay
        log.error("exited; restarting", child=child.name, code=code, in_s=delay)

    def _pump(self, child: Child, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.out.line(child.name, line)

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in reversed(running):  # ingress first, sinks last
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("did not stop in time; killed", child=child.name)
                child.process.kill()
                child.process.wait()
            if child.pump is not None:
                child.pump.join(2)
        log.info("all services stopped")


def up(data_dir: str | None) -> int:
    """Run every service until SIGINT or SIGTERM. Their settings are checked first, all of
    them: a SettingsError is raised before anything starts."""
    env = dict(os.environ)
    if data_dir is not None:
        env["PROCTRAIL_DATA_DIR"] = data_dir
    if sys.stdout.isatty():
        env.setdefault("PROCTRAIL_LOG_FORMAT", "console")
    env["PYTHONUNBUFFERED"] = "1"
    settings = Settings.from_env(env)
    ImagingSettings.from_env(env)
    out = PrefixedOutput(sys.stdout.buffer, max(len(s) for s in (*SERVICES, "proctrail")))
    plogging.configure("proctrail", settings.log_format, stream=out)
    return Supervisor(SERVICES, env, out).run()
