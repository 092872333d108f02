"""bedside on a broker it cannot reach answers 503 with Retry-After, never a false 202."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.conftest import REPO, free_port, service_env, token, wait_until
from tests.processes import stop

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens on port 1


def test_with_the_broker_unreachable_bedside_answers_503_with_retry_after(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(UNREACHABLE, tmp_path / "var", PROCTRAIL_BEDSIDE_ADDR=f"127.0.0.1:{port}")
    nurse = token(env, "nurse", "nurse.ana")
    bedside = subprocess.Popen(
        [sys.executable, "-m", "services.bedside"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with contextlib.ExitStack() as stack:
        stack.callback(stop, bedside)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=30,
            headers={"Authorization": f"Bearer {nurse}"},
        )
        stack.enter_context(client)

        def up() -> bool:
            try:
                return client.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=30)
        assert client.get("/healthz").json()["broker_connected"] is False
        r = client.post(
            "/v1/procedures", json={"phase": "harvest", "patient": {"id": "P-9"}, "room": "OR-1"}
        )
        assert r.status_code == 503
        assert r.headers["retry-after"].isdigit()
        assert r.headers["content-type"] == "application/problem+json"
