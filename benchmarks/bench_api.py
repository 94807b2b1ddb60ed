"""Throughput and latency of the HTTP API (``sendtopacs serve``) against the CLI.

One real ``sendtopacs serve`` (uvicorn) on a free loopback port, its device ``pacs`` a DCMTK
``storescp --ignore --fork +xa`` (``TCP_NODELAY=1``; every transfer syntax, so JPEG photos go
as they are) on 127.0.0.1:

(a) requests/s and p50/p95 latency of authenticated ``POST /api/v1/echo/pacs`` (one C-ECHO
    association each) and ``GET /api/v1/health``, from ``--clients`` threads each with its own
    keep-alive ``httpx.Client``, for ``--seconds`` seconds each;
(b) the wall time to convert and send a 10-file upload (5 photo-like JPEGs of about 1 MB and
    5 PDFs) with ``POST /api/v1/send/pacs`` (client side: upload, conversion, C-STORE, answer)
    against ``sendtopacs send FILES --to pacs --patient-id X`` (a child process: start-up,
    conversion, C-STORE); medians of ``--runs`` runs. Goal: the API at most 1.2x the CLI.

Run ``python benchmarks/bench_api.py [--clients N] [--seconds S] [--runs N] [--markdown PATH]
[--check]``; it needs the project installed and DCMTK (``apt-get install dcmtk``).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import attrs
import httpx
import numpy as np
from PIL import Image
from pypdf import PdfWriter

import sendtopacs_core as stp
from bench_convert import BenchmarkError, run_in_workdir, run_measured
from bench_send import CALLED_AET, _free_port, _nodelay_env, find_dcmtk

USER: Final = "bench"
PASSWORD: Final = "bench-Pw#2024!x"  # noqa: S105 (a throwaway password for the benchmark)
PATIENT_ID: Final = "BENCHAPI"
RATIO_GOAL: Final = 1.2  # API time <= 1.2 x the CLI's, 10-file upload
PHOTOS: Final = 5
PDFS: Final = 5
SEED: Final = 20240601


# --- inputs ---------------------------------------------------------------------------------


def make_inputs(folder: Path) -> list[Path]:
    """5 photo-like JPEGs (about 1 MB, 2048x1536, quality 90) and 5 PDFs (3 pages each)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    rows, columns = 1536, 2048
    y, x = np.mgrid[0:rows, 0:columns]
    paths = []
    for index in range(PHOTOS):
        base = np.stack(
            [
                (x * 255 // columns + index * 20) % 256,
                (y * 255 // rows) % 256,
                ((x + y) * 255 // (rows + columns)) % 256,
            ],
            axis=-1,
        )
        noise = rng.integers(-24, 24, size=base.shape)
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = folder / f"photo-{index}.jpg"
        Image.fromarray(pixels, "RGB").save(path, "JPEG", quality=90)
        paths.append(path)
    for index in range(PDFS):
        writer = PdfWriter()
        for _page in range(3):
            writer.add_blank_page(width=595, height=842)
        writer.add_metadata({"/Title": f"bench report {index}"})
        buffer = io.BytesIO()
        writer.write(buffer)
        path = folder / f"report-{index}.pdf"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


# --- the peers -----------------------------------------------------------------------------


@contextmanager
def storescp(work: Path) -> Iterator[int]:
    """``TCP_NODELAY=1 storescp --ignore --fork +xa`` (JPEG too) on a free port; its port."""
    binary, echoscu = find_dcmtk("storescp"), find_dcmtk("echoscu")
    port = _free_port()
    argv = [
        str(binary), "--fork", "--ignore", "+xa", "-aet", CALLED_AET, "-od", str(work), str(port),
    ]  # fmt: skip
    with (work / "storescp.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=_nodelay_env(True)
        )
    try:
        deadline = time.monotonic() + 15
        echo = [str(echoscu), "-aec", CALLED_AET, "-to", "2", "127.0.0.1", str(port)]
        while subprocess.run(echo, capture_output=True, check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"storescp did not start: see {work / 'storescp.log'}")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the server -----------------------------------------------------------------------------


def write_settings(path: Path, *, api_port: int, pacs_port: int, temp: Path) -> None:
    settings = stp.Settings(
        main=attrs.evolve(stp.Settings().main, temp_dir=temp),
        devices=(stp.Device(name="pacs", ae_title=CALLED_AET, host="127.0.0.1", port=pacs_port),),
        api=stp.ApiSettings(
            port=api_port,
            username=USER,
            password_hash=stp.hash_password(PASSWORD),
            auth_failures_per_minute=1_000_000,
        ),
    )
    settings.dump(path)


@contextmanager
def serve(settings: Path, port: int, log: Path) -> Iterator[str]:
    """``sendtopacs serve`` until the block ends (SIGTERM); yields its base URL."""
    argv = [sys.executable, "-m", "sendtopacs_adapters", "--settings", str(settings), "serve"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"sendtopacs serve did not start: see {log}")
            try:
                if httpx.get(f"{base}/api/v1/health", auth=(USER, PASSWORD)).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- (a) request rate -----------------------------------------------------------------------


class Load:
    """Requests/s and latency percentiles of one request from several clients."""

    def __init__(self, label: str, count: int, seconds: float, latencies: list[float]) -> None:
        self.label = label
        self.count = count
        self.seconds = seconds
        ordered = sorted(latencies)
        self.p50_ms = 1000 * ordered[len(ordered) // 2]
        self.p95_ms = 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def load(
    label: str,
    base: str,
    call: Callable[[httpx.Client], httpx.Response],
    *,
    clients: int,
    seconds: float,
) -> Load:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    ready, go = threading.Barrier(clients + 1), threading.Barrier(clients + 1)
    stop_at = 0.0

    def worker(index: int) -> None:
        with httpx.Client(base_url=base, auth=(USER, PASSWORD), timeout=30) as http:
            call(http)  # warm: connect, and the server's cache of a verified password
            ready.wait()
            go.wait()  # stop_at is set between the two barriers
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                response = call(http)
                latencies[index].append(time.perf_counter() - began)
                if not response.is_success:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    stop_at = began + seconds
    go.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise BenchmarkError(f"{label}: {errors[0]}")
    flat = [value for values in latencies for value in values]
    print(f"    {label}: {len(flat) / elapsed:.0f} req/s", flush=True)
    return Load(label, len(flat), elapsed, flat)


# --- (b) a 10-file upload -------------------------------------------------------------------


def api_send_once(base: str, files: Sequence[Path]) -> float:
    payload = [("files", (path.name, path.read_bytes())) for path in files]
    with httpx.Client(base_url=base, auth=(USER, PASSWORD), timeout=300) as http:
        began = time.perf_counter()
        response = http.post("/api/v1/send/pacs", data={"patient_id": PATIENT_ID}, files=payload)
        wall = time.perf_counter() - began
    document = response.json()
    if response.status_code != 200 or not document["ok"] or document["sent"] != len(files):
        raise BenchmarkError(f"POST /send/pacs: {response.status_code} {response.text[:500]}")
    return wall


def cli_send_once(settings: Path, files: Sequence[Path], log: Path) -> float:
    argv = [
        sys.executable, "-m", "sendtopacs_adapters", "--settings", str(settings), "send",
        *map(str, files), "--to", "pacs", "--patient-id", PATIENT_ID, "-q",
    ]  # fmt: skip
    wall, _rss = run_measured(argv, log=log)
    return wall


# --- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> int:
    files = make_inputs(work / "inputs")
    photo_mb = statistics.mean(path.stat().st_size for path in files[:PHOTOS]) / 1e6
    received = work / "received"
    received.mkdir(exist_ok=True)
    settings = work / "settings.json"
    api_port = _free_port()
    with storescp(received) as pacs_port:
        write_settings(settings, api_port=api_port, pacs_port=pacs_port, temp=work / "temp")
        with serve(settings, api_port, work / "serve.log") as base:
            print(f"measuring requests/s with {args.clients} clients ...", flush=True)
            loads = [
                load(
                    "POST /api/v1/echo/pacs",
                    base,
                    lambda http: http.post("/api/v1/echo/pacs"),
                    clients=args.clients,
                    seconds=args.seconds,
                ),
                load(
                    "GET /api/v1/health",
                    base,
                    lambda http: http.get("/api/v1/health"),
                    clients=args.clients,
                    seconds=args.seconds,
                ),
            ]
            print("measuring the 10-file upload ...", flush=True)
            api_walls, cli_walls = [], []
            for run_index in range(args.runs):
                api_walls.append(api_send_once(base, files))
                cli_walls.append(cli_send_once(settings, files, work / f"cli-{run_index}.log"))
                print(
                    f"    run {run_index + 1}: API {api_walls[-1]:.2f} s, "
                    f"CLI {cli_walls[-1]:.2f} s",
                    flush=True,
                )
    api_s, cli_s = statistics.median(api_walls), statistics.median(cli_walls)
    ratio = api_s / cli_s
    met = ratio <= RATIO_GOAL
    lines = [
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, httpx {httpx.__version__}; server: `sendtopacs serve` "
        f"(uvicorn, HTTP/1.1, no TLS) on 127.0.0.1; PACS: TCP_NODELAY=1 storescp --ignore "
        f"--fork +xa on 127.0.0.1.",
        "",
        f"**Request rate** ({args.clients} clients, keep-alive, Basic auth, "
        f"{args.seconds:g} s each)",
        "",
        "| request | requests | req/s | p50 ms | p95 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| `{item.label}` | {item.count} | {item.rate:.0f} | {item.p50_ms:.1f} "
            f"| {item.p95_ms:.1f} |"
            for item in loads
        ),
        "",
        f"**10-file upload** ({PHOTOS} JPEG photos of {photo_mb:.1f} MB, {PDFS} PDFs; convert "
        f"and send; median of {args.runs})",
        "",
        "| command | wall s (median) | runs (s) |",
        "| --- | ---: | --- |",
        f"| `POST /api/v1/send/pacs` (client side) | {api_s:.2f} "
        f"| {', '.join(f'{wall:.2f}' for wall in api_walls)} |",
        f"| `sendtopacs send FILES --to pacs --patient-id X` | {cli_s:.2f} "
        f"| {', '.join(f'{wall:.2f}' for wall in cli_walls)} |",
        "",
        f"- API / CLI: {ratio:.2f}x (goal <= {RATIO_GOAL}x: {'met' if met else 'NOT met'})",
        "",
        "Rerun: `python benchmarks/bench_api.py "
        f"--clients {args.clients} --seconds {args.seconds:g} --runs {args.runs} "
        "--markdown PATH`",
        "",
    ]
    report = "\n".join(lines)
    print()
    print(report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report, encoding="utf-8")
        print(f"written to {args.markdown}")
    return 1 if args.check and not met else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument("--runs", type=int, default=5, help="runs of the upload (median)")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report here")
    parser.add_argument("--workdir", type=Path, metavar="DIR", help="work here (kept)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is not met")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.runs < 1:
        parser.error("--clients and --runs must be at least 1, --seconds positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_workdir(run, args, "bench_api")


if __name__ == "__main__":
    sys.exit(main())
