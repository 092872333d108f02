"""Tablet to ledger: how long until a posted event can be read back by a compliance officer.

    .venv/bin/python bench/e2e_latency.py [events]

Runs `proctrail up` on a throw-away vhost and data dir, posts events one at a time and polls
the audit API every 5 ms. The baseline is bedside's own 202 (broker confirm) in the same run.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench._vhost import vhost


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(env: dict[str, str], role: str) -> str:
    args = ["token", "create", "--role", role, "--user", f"bench-{role}"]
    out = subprocess.run(
        [sys.executable, "-m", "proctrail.cli", *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def wait_healthy(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=1).json().get("broker_connected", True):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def run(n: int, url: str, data_dir: Path) -> None:
    bedside, audit = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = dict(
        os.environ,
        PROCTRAIL_AMQP_URL=url,
        PROCTRAIL_DATA_DIR=str(data_dir),
        PROCTRAIL_BEDSIDE_ADDR=bedside,
        PROCTRAIL_AUDIT_ADDR=audit,
        PROCTRAIL_DICOM_ADDR=f"127.0.0.1:{free_port()}",
        PROCTRAIL_LOG_FORMAT="json",
    )
    nurse, officer = token(env, "nurse"), token(env, "compliance")
    up = subprocess.Popen(
        [sys.executable, "-m", "proctrail.cli", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://{bedside}")
        wait_healthy(f"http://{audit}")
        tablet = httpx.Client(
            base_url=f"http://{bedside}", timeout=30, headers={"Authorization": f"Bearer {nurse}"}
        )
        reader = httpx.Client(
            base_url=f"http://{audit}", timeout=30, headers={"Authorization": f"Bearer {officer}"}
        )
        proc = tablet.post(
            "/v1/procedures", json={"phase": "harvest", "patient": {"id": "B1"}, "room": "OR-1"}
        ).json()["procedure_id"]
        confirmed, landed = [], []
        for i in range(n):
            event_id = str(uuid.uuid4())
            start = time.perf_counter()
            r = tablet.post(
                "/v1/events",
                json={
                    "event_id": event_id,
                    "type": "sedation.depth_scored",
                    "schema": 1,
                    "procedure_id": proc,
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "actor": {"id": "bench-nurse", "role": "nurse"},
                    "source": {"kind": "tablet", "id": "bench"},
                    "payload": {"scale": "RASS", "score": -(i % 5)},
                },
            )
            assert r.status_code == 202, r.text
            confirmed.append(time.perf_counter() - start)
            while reader.get(f"/v1/audit/events/{event_id}").status_code != 200:
                time.sleep(0.005)
            landed.append(time.perf_counter() - start)
        for name, values in (("POST -> 202 (baseline)", confirmed), ("POST -> in ledger", landed)):
            print(
                f"{name:<24} p50 {statistics.median(values) * 1000:7.1f} ms"
                f"  p95 {pct(values, 95) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms"
            )
        ratio = statistics.median(landed) / statistics.median(confirmed)
        print(
            f"ledger/202 ratio (p50): x{ratio:.1f}; worst case vs the 2 s budget: "
            f"{max(landed) / 2:.3f}"
        )
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with vhost() as url, tempfile.TemporaryDirectory(dir=".") as tmp:
        run(n, url, Path(tmp) / "var")


if __name__ == "__main__":
    main()
