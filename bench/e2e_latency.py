"""Tablet to ledger: how long until a posted event can be read back by a compliance officer.

    .venv/bin/python -m bench.e2e_latency [events]

Runs `proctrail up` on a throw-away vhost and data dir, posts events one at a time and polls
the audit API every 5 ms. The baseline is bedside's own 202 (broker confirm) in the same run.
Target: every event readable in the ledger within 2 s of its POST.
"""

from __future__ import annotations

import argparse
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

from bench._measure import Measure, figure
from bench._vhost import vhost

BUDGET_MS = 2000.0
QUICK = ["50"]


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


def latencies(n: int, url: str, data_dir: Path) -> tuple[list[float], list[float]]:
    """(POST -> 202, POST -> readable in the ledger) of n events, in seconds."""
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
        return confirmed, landed
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)


def run(argv: list[str]) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("events", nargs="?", type=int, default=200)
    n = parser.parse_args(argv).events
    with vhost() as url, tempfile.TemporaryDirectory(dir=".") as tmp:
        confirmed, landed = latencies(n, url, Path(tmp) / "var")
    for name, values in (("POST -> 202 (baseline)", confirmed), ("POST -> in ledger", landed)):
        print(
            f"{name:<24} p50 {statistics.median(values) * 1000:7.1f} ms"
            f"  p95 {pct(values, 95) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms"
        )
    ratio = statistics.median(landed) / statistics.median(confirmed)
    print(
        f"ledger/202 ratio (p50): x{ratio:.1f}; worst case vs the 2 s budget: {max(landed) / 2:.3f}"
    )
    baseline = f"202 p50 {figure(statistics.median(confirmed) * 1000, 'ms')}"
    return [
        Measure(f"in ledger p50 / 202 p50, {n} events", ratio, "x", baseline),
        Measure(f"in ledger, worst of {n}", max(landed) * 1000, "ms", baseline, BUDGET_MS, True),
    ]


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
