"""deploy/ as its own tools read it: Compose validates both compose files, systemd-analyze
accepts the units, and make-secrets makes a CA and certificates that check out. (The broker
configuration and definitions it makes are run for real in test_deploy_broker.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy"
SERVICES = ("audit", "bedside", "harvest", "imaging", "implant")


def tool(*candidates: list[str]) -> list[str]:
    """The first of these commands that runs; a missing tool fails in CI, skips elsewhere."""
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        plugin = command[1:] == ["compose"]  # the docker client alone has no compose plugin
        if plugin and subprocess.run([*command, "version"], capture_output=True).returncode:
            continue
        return command
    message = f"none of {[' '.join(c) for c in candidates]} is installed (./dev installs it)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def compose_config(folder: Path, *files: str) -> subprocess.CompletedProcess[str]:
    compose = tool(["docker", "compose"], ["docker-compose"])
    args = [a for f in files for a in ("-f", f)]
    return subprocess.run([*compose, *args, "config", "-q"], cwd=folder, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_both_compose_files_validate_and_a_misspelt_key_does_not(tmp_path: Path) -> None:
    folder = shutil.copytree(DEPLOY, tmp_path / "deploy")
    single = compose_config(folder, "compose.yaml")
    cluster = compose_config(folder, "compose.yaml", "compose.cluster.yaml")
    assert single.returncode == 0, single.stderr
    assert cluster.returncode == 0, cluster.stderr
    text = (folder / "compose.yaml").read_text()
    (folder / "compose.yaml").write_text(text.replace("stop_grace_period", "stop_grace_peroid"))
    assert compose_config(folder, "compose.yaml").returncode != 0


def verify_units(folder: Path) -> subprocess.CompletedProcess[str]:
    analyze = tool(["systemd-analyze"])
    units = sorted(str(p) for p in folder.glob("*.service"))
    return subprocess.run([*analyze, "verify", *units], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_systemd_analyze_accepts_every_unit_and_refuses_a_misspelt_directive(
    tmp_path: Path,
) -> None:
    """The units run /opt/proctrail/.venv/bin/python, which verify insists exists: the copies
    checked here run this checkout's interpreter instead; nothing else changes."""
    folder = tmp_path / "units"
    folder.mkdir()
    for unit in DEPLOY.glob("systemd/*.service"):
        text = unit.read_text().replace("/opt/proctrail/.venv/bin/python", sys.executable)
        (folder / unit.name).write_text(text)
    assert sorted(p.stem for p in folder.glob("*.service")) == [f"proctrail-{s}" for s in SERVICES]
    checked = verify_units(folder)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    unit = folder / "proctrail-audit.service"
    unit.write_text(unit.read_text().replace("Restart=", "Restrat="))
    refused = verify_units(folder)
    assert "Restrat" in refused.stdout + refused.stderr


def make_secrets(folder: Path) -> Path:
    env = {**os.environ, "PROCTRAIL_BIN": str(Path(sys.executable).parent / "proctrail")}
    subprocess.run([str(DEPLOY / "make-secrets"), str(folder)], env=env, check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    return folder


def test_make_secrets_makes_certificates_the_ca_signed_for_the_right_names(
    tmp_path: Path,
) -> None:
    folder = make_secrets(tmp_path / "secrets")
    openssl = tool(["openssl"])
    for name, wanted in (("broker", "DNS:rabbitmq-3"), ("dicom", "DNS:imaging")):
        cert = str(folder / f"{name}.crt")
        ok = subprocess.run([*openssl, "verify", "-CAfile", str(folder / "ca.crt"), cert],
                            capture_output=True, text=True)  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        names = subprocess.run([*openssl, "x509", "-in", cert, "-noout", "-ext",
                                "subjectAltName"], capture_output=True, text=True)  # fmt: skip
        assert wanted in names.stdout
    assert (folder.stat().st_mode & 0o777) == 0o700
    assert (folder / "ca.key").stat().st_mode & 0o077 == 0
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    make_secrets(folder)  # run twice: no secret or certificate that exists is replaced
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    regenerated = "rabbitmq-definitions.json"  # from the same passwords, with fresh salts
    assert {k: v for k, v in after.items() if k != regenerated} == {
        k: v for k, v in before.items() if k != regenerated
    }
