"""CI can never go green by skipping the broker: integration tests fail when it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOWHERE = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens on port 1


def run_integration_test(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PROCTRAIL_AMQP_URL"] = NOWHERE
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_bus_rabbitmq.py::test_an_unroutable_message_is_refused_not_lost",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("ci", "outcome"), [(True, "1 error"), (False, "1 skipped")])
def test_a_missing_broker_fails_integration_tests_in_ci_and_skips_them_elsewhere(
    ci: bool, outcome: str
) -> None:
    result = run_integration_test(ci)
    assert outcome in result.stdout, result.stdout
    assert "RabbitMQ is not reachable" in result.stdout
    assert (result.returncode != 0) is ci
