"""DICOM receive speed: our listener vs pynetdicom's storescp app vs DCMTK's storescp.

    .venv/bin/python -m bench.dicom_receive [--ct 1000] [--rounds 3] [--cine-mb 60] [--skip-500mb]

Every receiver is started fresh (free port, own output dir) and fed by the same sender, DCMTK
storescu with TCP_NODELAY=1 (dicom.md: Nagle stalls small objects ~40 ms each). The numbers
to compare across machines are the ratios against the baselines measured in this same run:
ours vs the pynetdicom app (target >= 1.5x) and vs DCMTK (>= 0.3x) on small CT objects, vs
DCMTK on >= 50 MB XA cines (>= 0.6x), 4 concurrent senders vs one (>= 1.5x), and the peak RSS
of our listener while it receives a ~500 MB object (<= 200 MB; VmRSS of the process tree
every 20 ms, and VmHWM at the end). The 4-sender figure is compared with ours' single-sender
CT run above it. Ours answers Success only once the object is durable (fsync, outbox commit);
the baselines write the file and answer, at their largest receive PDU (pynetdicom app -pdu 0,
DCMTK -pdu 131072; ours sets unlimited). Each receiver's stored files are counted (ours:
<data>/imaging/objects/); a missing object fails the run. The CT runs are repeated (--rounds,
interleaved across receivers) and the median is compared: one run on a shared machine swings
by a third. The cost of creating a file where the receivers write is printed too: on the
development machine it is 0.8 ms under /work against 0.03 ms under /tmp, and each receiver pays
it once per object, which narrows every gap to DCMTK.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import generate_uid

from bench._dicom_data import ct_copies, frames_for, write_xa_cine
from bench._measure import Measure, figure
from bench._vhost import vhost

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CALLING_AE = "BENCHSCU"
SENDER_ENV = dict(os.environ, TCP_NODELAY="1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def tree_pids(root: int) -> list[int]:
    """root and all its descendants (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Sum of VmRSS over a process tree, sampled every 20 ms in a thread; keeps the peak."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak_kb = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = sum(status_kb(pid, "VmRSS") for pid in tree_pids(self.pid))
            self.peak_kb = max(self.peak_kb, rss)
            self.samples += 1
            self._stop.wait(self.every_s)


@dataclass
class Receiver:
    name: str
    ae_title: str
    port: int
    proc: subprocess.Popen[bytes]
    out_dir: Path  # where its stored objects end up
    log_path: Path

    def stored(self) -> int:
        return len(files_under(self.out_dir))

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def echo_ok(port: int, ae_title: str) -> bool:
    r = subprocess.run(
        ["echoscu", "-q", "-to", "2", "-aet", CALLING_AE, "-aec", ae_title, HOST, str(port)],
        env=SENDER_ENV,
        capture_output=True,
        timeout=10,
    )
    return r.returncode == 0


def json_events(log_path: Path) -> list[dict[str, object]]:
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                out.append(record)
    return out


def wait_ready(rx: Receiver, extra: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if rx.proc.poll() is not None:
            raise SystemExit(f"{rx.name} exited with {rx.proc.returncode}:\n{rx.log_tail()}")
        if extra() and echo_ok(rx.port, rx.ae_title):
            return
        time.sleep(0.1)
    raise SystemExit(f"{rx.name} not ready on port {rx.port} within 60 s:\n{rx.log_tail()}")


def start_ours(url: str, work: Path) -> Receiver:
    port, data = free_port(), work / "data"
    env = dict(
        os.environ,
        PROCTRAIL_AMQP_URL=url,
        PROCTRAIL_DATA_DIR=str(data),
        PROCTRAIL_DICOM_ADDR=f"{HOST}:{port}",
        PROCTRAIL_DICOM_AE_TITLE="PROCTRAIL",
        PROCTRAIL_DICOM_ALLOWED_AETS=CALLING_AE,
        PROCTRAIL_LOG_FORMAT="json",
    )
    log_path = work / "listener.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.imaging"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    rx = Receiver(
        "proctrail listener", "PROCTRAIL", port, proc, data / "imaging" / "objects", log_path
    )

    def logged_ready() -> bool:  # "listening" is logged before the bus has connected
        events = {e.get("event") for e in json_events(log_path)}
        return "listening" in events and "bus ready" in events

    wait_ready(rx, logged_ready)
    return rx


def start_pynetdicom(work: Path) -> Receiver:
    port, out = free_port(), work / "out"
    out.mkdir()
    log_path = work / "storescp.log"
    cmd = [sys.executable, "-m", "pynetdicom", "storescp", str(port), "-ba", HOST]
    cmd += ["-aet", "STORESCP", "-od", str(out), "-pdu", "0"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    rx = Receiver("pynetdicom storescp app", "STORESCP", port, proc, out, log_path)
    wait_ready(rx)
    return rx


def start_dcmtk(work: Path) -> Receiver:
    port, out = free_port(), work / "out"
    out.mkdir()
    log_path = work / "storescp.log"
    cmd = ["storescp", "-aet", "STORESCP", "-pdu", "131072", "-od", str(out), str(port)]
    with log_path.open("wb") as log:
        # TCP_NODELAY for its C-STORE responses too: the fastest DCMTK there is.
        proc = subprocess.Popen(cmd, cwd=work, env=SENDER_ENV, stdout=log, stderr=subprocess.STDOUT)
    rx = Receiver("DCMTK storescp", "STORESCP", port, proc, out, log_path)
    wait_ready(rx)
    return rx


def stop(rx: Receiver) -> None:
    rx.proc.send_signal(signal.SIGINT)
    try:
        rx.proc.wait(30)
    except subprocess.TimeoutExpired:
        print(f"  ! {rx.name} ignored SIGINT for 30 s; killed")
        rx.proc.kill()
        rx.proc.wait()


def send(rx: Receiver, dirs: list[Path]) -> float:
    """One storescu per directory, all at once; wall seconds until the last one is done."""
    cmd = ["storescu", "+sd", "+r", "-aet", CALLING_AE, "-aec", rx.ae_title, HOST, str(rx.port)]
    start = time.perf_counter()
    senders = [
        subprocess.Popen(
            [*cmd, str(d)], env=SENDER_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for d in dirs
    ]
    outputs = [p.communicate(timeout=1800)[0] for p in senders]
    elapsed = time.perf_counter() - start
    for p, out in zip(senders, outputs, strict=True):
        if p.returncode != 0 or out.strip():
            text = out.decode(errors="replace").strip()
            print(f"  ! storescu exited {p.returncode}: {text[-2000:]}")
    return elapsed


@contextlib.contextmanager
def receiver(kind: str, url: str, scratch: Path, label: str, expect: int) -> Iterator[Receiver]:
    """Start a fresh receiver in its own dir; after use check it stored `expect` objects."""
    work = Path(tempfile.mkdtemp(prefix=f"{kind}-{label}-", dir=scratch))
    if kind == "ours":
        rx = start_ours(url, work)
    elif kind == "pynetdicom":
        rx = start_pynetdicom(work)
    else:
        rx = start_dcmtk(work)
    try:
        yield rx
        stored = rx.stored()
        if stored != expect:
            print(f"  ! {rx.name} stored {stored} of {expect} objects:\n{rx.log_tail()}")
            raise SystemExit(1)
        if kind == "ours":
            report_ours_log(rx)
    finally:
        stop(rx)
        if kind == "ours" and rx.proc.returncode != 0:
            print(f"  ! {rx.name} exited {rx.proc.returncode} on SIGINT:\n{rx.log_tail()}")
        shutil.rmtree(work, ignore_errors=True)


def report_ours_log(rx: Receiver) -> None:
    events = json_events(rx.log_path)
    counts = Counter(str(e.get("event")) for e in events if e.get("level") in ("warning", "error"))
    expected = {"capture matches no open procedure", "no PROCTRAIL_DICOM_ALLOWED_AETS"}
    odd = {k: v for k, v in counts.items() if not any(k.startswith(x) for x in expected)}
    if odd:
        print(f"  ! listener warnings/errors: {odd}")


WIDTH = 28
RESULTS: list[Measure] = []  # this run's, for the summary table
QUICK = ["--rounds", "1"]  # 1,000 CT once each: fewer and the set-up dominates


def row(name: str, text: str) -> None:
    print(f"  {name:<{WIDTH}} {text}")


def ratio_line(measure: str, value: float, target: float, baseline: str) -> None:
    """Print a ratio against its target and keep it for the summary table."""
    kept = Measure(measure, value, "x", baseline, target)
    row(measure, f"x{value:.2f}  (target {kept.target_text()}: {'ok' if kept.met else 'MISSED'})")
    RESULTS.append(kept)


def create_cost_ms(directory: Path, n: int = 200) -> float:
    """Wall time of creating one empty file in `directory` (what a receiver pays per
    object before it writes a byte)."""
    probe = Path(tempfile.mkdtemp(prefix="create-", dir=directory))
    start = time.perf_counter()
    for i in range(n):
        os.close(os.open(probe / str(i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    elapsed = time.perf_counter() - start
    shutil.rmtree(probe)
    return elapsed / n * 1000


def bench_ct(url: str, scratch: Path, ct_dirs: list[Path], n: int, rounds: int) -> None:
    kb = sum(p.stat().st_size for d in ct_dirs for p in files_under(d)) / n / 1000
    print(f"\n{n} x {kb:.0f} kB CT (CT_small.dcm), one storescu association, {rounds} rounds")
    here, tmp = create_cost_ms(scratch), create_cost_ms(Path(tempfile.gettempdir()))
    row("creating one file", f"{here:.2f} ms here, {tmp:.2f} ms in {tempfile.gettempdir()}"
        " (every receiver pays it per object)")  # fmt: skip
    runs: dict[str, list[float]] = {"dcmtk": [], "pynetdicom": [], "ours": []}
    names: dict[str, str] = {}
    for _ in range(rounds):  # interleaved, so a noisy spell on the machine hits all three
        for kind in runs:
            with receiver(kind, url, scratch, "ct", n) as rx:
                runs[kind].append(send(rx, [ct_dirs[0].parent]))
            names[kind] = rx.name
    seconds = {kind: statistics.median(times) for kind, times in runs.items()}
    for kind, times in runs.items():
        each = " ".join(f"{t:.2f}" for t in times)
        row(names[kind], f"{seconds[kind]:7.2f} s  {n / seconds[kind]:7.0f} files/s  ({each})")
    for kind, target in (("pynetdicom", 1.5), ("dcmtk", 0.3)):
        baseline = f"{kind} {figure(n / seconds[kind], 'files/s')}"
        ratio_line(f"CT: ours / {kind}", seconds[kind] / seconds["ours"], target, baseline)

    print(f"\n{n} CT, 4 concurrent storescu senders ({n // 4}-{-(-n // 4)} files each) vs one")
    fours = []
    for _ in range(rounds):
        with receiver("ours", url, scratch, "ct4", n) as rx:
            fours.append(send(rx, ct_dirs))
    four = statistics.median(fours)
    one_rate, four_rate = n / seconds["ours"], n / four
    row("ours, 1 sender (above)", f"{seconds['ours']:7.2f} s  {one_rate:7.0f} files/s")
    row("ours, 4 senders", f"{four:7.2f} s  {four_rate:7.0f} files/s  "
        f"({' '.join(f'{t:.2f}' for t in fours)})")  # fmt: skip
    baseline = f"1 sender {figure(one_rate, 'files/s')}"
    ratio_line("CT: 4 senders / 1 sender", four_rate / one_rate, 1.5, baseline)


def bench_cines(url: str, scratch: Path, cine_dir: Path) -> None:
    files = files_under(cine_dir)
    total_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"\n{len(files)} XA cines, {total_mb / len(files):.1f} MB each, one storescu association")
    rates: dict[str, float] = {}
    for kind in ("dcmtk", "pynetdicom", "ours"):
        with receiver(kind, url, scratch, "cine", len(files)) as rx:
            elapsed = send(rx, [cine_dir])
        rates[kind] = total_mb / elapsed
        row(rx.name, f"{elapsed:7.2f} s  {rates[kind]:7.0f} MB/s")
    baseline = f"dcmtk {figure(rates['dcmtk'], 'MB/s')}"
    ratio_line("cine: ours / DCMTK MB/s", rates["ours"] / rates["dcmtk"], 0.6, baseline)
    row("cine: ours / pynetdicom app", f"x{rates['ours'] / rates['pynetdicom']:.2f}  (no target)")


def bench_memory(url: str, scratch: Path, big_dir: Path) -> None:
    (big,) = files_under(big_dir)
    mb = big.stat().st_size / 1e6
    print(f"\npeak RSS of the listener (process tree) receiving one {mb:.0f} MB XA object")
    with receiver("ours", url, scratch, "big", 1) as rx:
        pid = rx.proc.pid
        idle_mb = sum(status_kb(p, "VmRSS") for p in tree_pids(pid)) / 1000
        with RssSampler(pid) as sampler:
            elapsed = send(rx, [big_dir])
        hwm_mb = sum(status_kb(p, "VmHWM") for p in tree_pids(pid)) / 1000
    peak_mb = sampler.peak_kb / 1000
    row("idle before sending", f"{idle_mb:7.0f} MB")
    row(f"peak of {sampler.samples} samples/20 ms", f"{peak_mb:7.0f} MB  ({mb / elapsed:.0f} MB/s)")
    row("VmHWM at the end", f"{hwm_mb:7.0f} MB")
    worst = max(peak_mb, hwm_mb)
    kept = Measure(
        f"{mb:.0f} MB object: peak RSS", worst, "MB", f"idle {idle_mb:.0f} MB", 200, True
    )
    row(kept.name, f"{worst:7.0f} MB  (target <= 200 MB: {'ok' if kept.met else 'MISSED'})")
    RESULTS.append(kept)


def summary() -> None:
    print("\nsummary (ratios are speed of ours / speed of the baseline, same run)")
    print(f"  {'measure':<{WIDTH}} {'value':>8}  {'target':<10} verdict")
    for m in RESULTS:
        mark = "ok" if m.met else "MISSED"
        print(f"  {m.name:<{WIDTH}} {m.value_text():>8}  {m.target_text():<10} {mark}")


def run(argv: list[str]) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ct", type=int, default=1000, help="CT_small copies (default 1000)")
    parser.add_argument("--cine-mb", type=float, default=60, help="size of each of 3 XA cines")
    parser.add_argument("--big-mb", type=float, default=500, help="object for the memory test")
    parser.add_argument("--skip-500mb", action="store_true", help="skip the memory test")
    parser.add_argument("--rounds", type=int, default=3, help="CT runs per receiver (median)")
    parser.add_argument(
        "--dir", type=Path, default=REPO, help="where the data and every receiver's files go"
    )
    args = parser.parse_args(argv)
    RESULTS.clear()
    for tool in ("storescu", "storescp", "echoscu"):
        if shutil.which(tool) is None:
            raise SystemExit(f"DCMTK's {tool} is not on PATH")

    with vhost() as url, tempfile.TemporaryDirectory(prefix="bench-dicom-", dir=args.dir) as tmp:
        scratch = Path(tmp)
        start = time.perf_counter()
        ct_dirs = [scratch / "data" / "ct" / str(k) for k in range(4)]
        ct_copies(ct_dirs, args.ct)
        cine_dir = scratch / "data" / "cine"
        cine_dir.mkdir()
        study = generate_uid()
        for k in range(3):
            write_xa_cine(cine_dir / f"xa{k}.dcm", frames_for(args.cine_mb), k + 1, study)
        big_dir = scratch / "data" / "big"
        if not args.skip_500mb:
            big_dir.mkdir()
            write_xa_cine(big_dir / "xa-big.dcm", frames_for(args.big_mb))
        print(f"test data built in {time.perf_counter() - start:.1f} s under {scratch.name}/")
        print(f"sender: DCMTK storescu ({CALLING_AE}), TCP_NODELAY=1; {os.cpu_count()} CPUs")

        bench_ct(url, scratch, ct_dirs, args.ct, args.rounds)
        bench_cines(url, scratch, cine_dir)
        if not args.skip_500mb:
            bench_memory(url, scratch, big_dir)
        summary()
    return list(RESULTS)


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
