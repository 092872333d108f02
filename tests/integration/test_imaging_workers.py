"""Listener worker processes: several devices at once across cores, and a worker that dies is
replaced without losing or refusing anything."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pydicom
import pytest

from tests import dicom_factory
from tests.integration.conftest import dcmtk, wait_until
from tests.integration.imaging_listener import Audit, RunningListener, running_listener

pytestmark = pytest.mark.integration


def send_all_at_once(listener: RunningListener, batches: list[list[Path]]) -> list[int]:
    """One DCMTK storescu per batch, all running together; their exit codes."""
    command = [dcmtk("storescu"), "-aet", "STORESCU", "-aec", "PROCTRAIL", "127.0.0.1",
               str(listener.port)]  # fmt: skip
    senders = [
        subprocess.Popen(
            [*command, *map(str, batch)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, TCP_NODELAY="1"),
        )
        for batch in batches
    ]
    return [p.wait(300) for p in senders]


def test_workers_share_the_port_and_a_killed_worker_is_replaced_without_loss(
    amqp_url: str, tmp_path: Path
) -> None:
    files = dicom_factory.ct_series(tmp_path / "ct", 60)
    sop_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    first, later = files[:40], files[40:]
    with running_listener(amqp_url, tmp_path / "var", PROCTRAIL_DICOM_WORKERS="2") as listener:
        wait_until(lambda: len(listener.logged("listening")) == 2, 60)
        (started,) = listener.logged("listener workers started")
        assert len(started["pids"]) == 2

        assert send_all_at_once(listener, [first[k::4] for k in range(4)]) == [0] * 4

        os.kill(started["pids"][0], signal.SIGKILL)
        wait_until(lambda: listener.logged("listener worker exited; restarting"), 30)
        wait_until(lambda: len(listener.logged("listening")) == 3, 60)  # its replacement
        assert send_all_at_once(listener, [later[k::2] for k in range(2)]) == [0] * 2
        assert listener.alive()

        captures = Audit(amqp_url).wait_for("imaging.capture_received", 60, timeout=120)
        announced = {c["payload"]["sop_instance_uid"] for c in captures}
        assert announced == sop_uids  # every object, whichever worker took it
        assert len(listener.files()) == 60
        assert listener.leftovers() == []
