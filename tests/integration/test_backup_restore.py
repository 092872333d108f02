"""The runbook's backup and restore, done for real: back up while `proctrail up` works,
restore into an empty data dir, prove the restore with `proctrail verify` against the
checkpoint the backup kept and `proctrail verify-objects`, then run the clinic on it again.
A restored object that differs from the ledger's hash is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from proctrail.cli import main
from tests.integration.clinic import Clinic
from tests.integration.conftest import running_system

pytestmark = pytest.mark.integration


def test_a_backup_taken_while_running_restores_verifies_and_runs_on(
    amqp_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup"
    (tmp_path / "before").mkdir()
    with running_system(amqp_url, tmp_path / "before") as system:
        clinic = Clinic(system, tmp_path / "scratch")
        procedure = clinic.schedule("implant", "PAT-B1", "ACC-B1")
        vitals = {"spo2_pct": 98, "heart_rate_bpm": 70, "source": "monitor", "artifact": False}
        clinic.post(procedure, "sedation.vitals_recorded", vitals)
        clinic.images("PAT-B1", "ACC-B1", [("CT", 0.0), ("XA", 0.0)])
        clinic.timeline(procedure, captures=2)
        assert main(["backup", str(backup), "--data-dir", str(system.data_dir)]) == 0
        assert "backed up" in capsys.readouterr().out

    restored = tmp_path / "after" / "var"
    shutil.copytree(backup, restored)  # the runbook: cp -a backup/. var/
    kept = str(backup / "checkpoint.txt")
    assert main(["verify", "--data-dir", str(restored), "--checkpoint", kept,
                 "--all-signatures"]) == 0  # fmt: skip
    assert main(["verify-objects", "--data-dir", str(restored)]) == 0
    assert "2 checked against the ledger, 0 missing, 0 altered" in capsys.readouterr().out

    with running_system(amqp_url, tmp_path / "after") as system:  # the clinic goes on
        clinic = Clinic(system, tmp_path / "scratch2")
        again = clinic.schedule("implant", "PAT-B2", "ACC-B2")
        clinic.images("PAT-B2", "ACC-B2", [("CT", 0.0)])
        clinic.timeline(again, captures=1)
    assert main(["verify", "--data-dir", str(restored), "--checkpoint", kept]) == 0
    assert "consistent with the given checkpoint" in capsys.readouterr().out

    objects = sorted((restored / "imaging" / "objects").rglob("*.dcm"))
    assert len(objects) == 3
    damaged = objects[0]
    data = damaged.read_bytes()
    damaged.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one bit pattern changed
    objects[1].unlink()
    assert main(["verify-objects", "--data-dir", str(restored)]) == 1
    out = capsys.readouterr().out
    assert f"altered: {damaged.relative_to(restored / 'imaging')}" in out
    assert f"missing: {objects[1].relative_to(restored / 'imaging')}" in out
