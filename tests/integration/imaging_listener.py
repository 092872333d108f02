"""The imaging listener as a real process on a vhost of its own, and what it sent to audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.filereader import _read_file_meta_info, read_preamble

from services.imaging.spool import PREFIX as SPOOL_PREFIX
from shared.bus import PikaBus, default_topology
from tests.integration.conftest import (
    REPO,
    dcmtk,
    free_port,
    ledger_bound,
    service_env,
    wait_until,
)
from tests.processes import stop

ALLOWED = "STORESCU,ECHOSCU,MODALITY1,PYNETDICOM"
_PROPOSE = {  # transfer syntax -> storescu option that proposes it
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
}


def _transfer_syntax(path: Path) -> str:
    with path.open("rb") as fp:
        read_preamble(fp, force=False)
        return str(_read_file_meta_info(fp).TransferSyntaxUID)


def pynetdicom_send(port: int, path: Path, aet: str = "PYNETDICOM") -> int:
    """pynetdicom as the sender, streaming the file's bytes as they are; the C-STORE status."""
    from pynetdicom import AE, _config

    with path.open("rb") as fp:
        read_preamble(fp, force=False)
        meta = _read_file_meta_info(fp)
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        ae = AE(ae_title=aet)
        ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
        assoc = ae.associate("127.0.0.1", port, ae_title="PROCTRAIL")
        if not assoc.is_established:
            return -1
        try:
            status = assoc.send_c_store(path)
        finally:
            assoc.release()
        return int(status.Status) if "Status" in status else -1
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False


@dataclass
class RunningListener:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    amqp_url: str
    log_path: Path

    @property
    def root(self) -> Path:
        return self.data_dir / "imaging"

    def alive(self) -> bool:
        echo = subprocess.run(
            [dcmtk("echoscu"), "-aet", "ECHOSCU", "-aec", "PROCTRAIL", "127.0.0.1", str(self.port)],
            capture_output=True, timeout=30,
        )  # fmt: skip
        return self.process.poll() is None and echo.returncode == 0

    def storescu(self, *paths: Path, aet: str = "STORESCU") -> subprocess.CompletedProcess[str]:
        """DCMTK's storescu, proposing each file's own transfer syntax (no transcoding)."""
        flag = _PROPOSE.get(_transfer_syntax(paths[0]), "-xe")
        return subprocess.run(
            [dcmtk("storescu"), "-v", flag, "-aet", aet, "-aec", "PROCTRAIL", "127.0.0.1",
             str(self.port), *map(str, paths)],
            capture_output=True, text=True, timeout=300, env=dict(os.environ, TCP_NODELAY="1"),
        )  # fmt: skip

    def files(self) -> list[Path]:
        return sorted(p for p in (self.root / "objects").rglob("*") if p.is_file())

    def leftovers(self) -> list[Path]:
        """Files in incoming/ other than the empty ones prepared for the next objects."""
        return sorted(
            p
            for p in (self.root / "incoming").rglob("*")
            if p.is_file() and not (p.name.startswith(SPOOL_PREFIX) and p.stat().st_size == 0)
        )

    def logged(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                out.append(record)
        return out


class Audit:
    """Everything the listener sent toward the ledger so far, accumulated across reads."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.events: list[dict[str, Any]] = []

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        self.events += ledger_bound(self.amqp_url)
        return [e for e in self.events if e["type"] == event_type]

    def wait_for(self, event_type: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.of_type(event_type)) >= count, timeout=timeout, every=0.1)
        return self.of_type(event_type)


@contextmanager
def running_listener(
    amqp_url: str, data_dir: Path, module: str = "services.imaging", **env: str
) -> Iterator[RunningListener]:
    """The listener (`python -m module`: another entry point may stand in for it)."""
    declare = PikaBus(amqp_url, default_topology(), name="test-declare")
    declare.start()
    assert declare.wait_ready(20)
    declare.close()
    port = free_port()
    environment = service_env(
        amqp_url, data_dir, PROCTRAIL_DICOM_ADDR=f"127.0.0.1:{port}",
        PROCTRAIL_DICOM_ALLOWED_AETS=ALLOWED, **env,
    )  # fmt: skip
    log_path = data_dir.parent / "imaging.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module], env=environment, cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = RunningListener(process, port, data_dir, amqp_url, log_path)
    try:
        wait_until(lambda: running.logged("listening") and running.logged("bus ready"), 60)
        yield running
    finally:
        stop(process)


def dataset_bytes(path: Path) -> bytes:
    """The encoded dataset after the file meta: what went over the wire."""
    with path.open("rb") as fp:
        read_preamble(fp, force=False)
        _read_file_meta_info(fp)
        return fp.read()
