"""The one way the tests stop a process they started: ask, wait, and kill if it will not go."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop(
    process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout_s: float = 30
) -> int | None:
    """Send `sig` (SIGTERM, or SIGINT for `proctrail up`), wait up to `timeout_s`, then kill.
    Returns the exit status it stopped with; None when it had to be killed."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(sig)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
