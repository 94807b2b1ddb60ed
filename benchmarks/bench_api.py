"""Throughput and latency of the HTTP API (``sendtopacs serve``) against the library and the CLI.

One real ``sendtopacs serve`` (uvicorn) on a free loopback port, its device ``pacs`` a DCMTK
``storescp --ignore --fork +xa`` (``TCP_NODELAY=1``; every transfer syntax, so JPEG photos go
as they are) on 127.0.0.1:

(a) requests/s and p50/p95 latency of authenticated ``POST /api/v1/echo/pacs`` (one C-ECHO
    association each) and ``GET /api/v1/health``, from ``--clients`` threads each with its own
    keep-alive ``httpx.Client``, for ``--seconds`` seconds each (no peer; issue 7 asks for
    the figure);
(b) a 10-file upload (5 photo-like JPEGs of about 1 MB and 5 PDFs) converted and sent, like
    with like, ``--runs`` runs interleaved:

    - warm against warm (the goal's row): ``POST /api/v1/send/pacs`` to the running server
      (client side: upload, conversion, C-STORE, answer) against the same work done by the
      library (``Sender(device, settings).send(files, study=...)``) in a running Python
      process; both have done it once before the first measured run;
    - cold against cold: ``sendtopacs serve`` started, the same request, until its answer,
      against ``sendtopacs send FILES --to pacs --patient-id X`` (start-up included).

    Goal (issue 7): the API at most 1.2x the time of the same work without it.

Run ``python benchmarks/bench_api.py [--clients N] [--seconds S] [--runs N] [--smoke]
[--markdown PATH] [--workdir DIR] [--check]``; it needs the project installed and DCMTK.
"""

from __future__ import annotations

import argparse
import io
import json
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
from _bench import (
    CALLED_AET,
    BenchmarkError,
    Comparison,
    Sample,
    Side,
    add_common_options,
    all_met,
    check_cli,
    check_runs,
    compare,
    comparison_table,
    finish,
    free_port,
    machine_line,
    run_in_workdir,
    run_streams,
    sendtopacs_argv,
    stop,
    storescp,
    tree_pids,
    vm_hwm_kib,
)

USER: Final = "bench"
PASSWORD: Final = "bench-Pw#2024!x"  # noqa: S105 (a throwaway password for the benchmark)
PATIENT_ID: Final = "BENCHAPI"
RATIO_GOAL: Final = 1.2  # API time <= 1.2 x the CLI's, 10-file upload
PHOTOS: Final = 5
PDFS: Final = 5
SMOKE_FILES: Final = 2  # of each kind

#: The same work as ``POST /send/pacs`` by the library, in a warm process: one send per line.
LIBRARY_SCRIPT: Final = """\
import json, sys
from pathlib import Path
import sendtopacs_core as stp
settings = stp.Settings.load(sys.argv[1])
device = settings.device("pacs")
study = stp.Study(patient_id=sys.argv[2])
files = [Path(name) for name in sys.argv[3:]]
for _line in sys.stdin:
    report = stp.Sender(device, settings=settings).send(files, study=study)
    print(json.dumps({"ok": report.ok, "sent": len(report.sent)}), flush=True)
"""
SEED: Final = 20240601


# --- inputs ---------------------------------------------------------------------------------


def make_inputs(folder: Path, photos: int = PHOTOS, pdfs: int = PDFS) -> list[Path]:
    """Photo-like JPEGs (about 1 MB, 2048x1536, quality 90) and PDFs (3 pages each)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    rows, columns = 1536, 2048
    y, x = np.mgrid[0:rows, 0:columns]
    paths = []
    for index in range(photos):
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
    for index in range(pdfs):
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


def tree_peak_kib(pid: int) -> int:
    """The sum of the peak RSS so far of ``pid`` and its living descendants."""
    return sum(vm_hwm_kib(member) for member in tree_pids(pid))


@contextmanager
def serve(settings: Path, port: int, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``sendtopacs serve`` until the block ends (SIGTERM); yields its base URL and process."""
    argv = sendtopacs_argv("--settings", str(settings), "serve")
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
            time.sleep(0.02)
        yield base, proc
    finally:
        stop(proc, timeout=15)


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


class WarmLibrary:
    """A running Python process that does the API's send with the library, once per line."""

    def __init__(self, settings: Path, files: Sequence[Path], log: Path) -> None:
        self.files = files
        self._err = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LIBRARY_SCRIPT, str(settings), PATIENT_ID, *map(str, files)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            bufsize=1,
        )

    def send(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        began = time.perf_counter()
        self.proc.stdin.write("send\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        wall = time.perf_counter() - began
        try:
            document = json.loads(line)
        except ValueError:
            raise BenchmarkError(f"the library process stopped: see {self._err.name}") from None
        if not document["ok"] or document["sent"] != len(self.files):
            raise BenchmarkError(f"the library sent {document['sent']} of {len(self.files)}")
        return wall

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        stop(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


def warm_comparison(
    base: str, server: subprocess.Popen[bytes], settings: Path, files: Sequence[Path],
    work: Path, *, runs: int,
) -> Comparison:  # fmt: skip
    library = WarmLibrary(settings, files, work / "library.log")
    try:
        api_send_once(base, files)  # both warm: each has done the work once
        library.send()
        return compare(
            f"{len(files)}-file upload, warm vs warm",
            Side(
                "POST /api/v1/send/pacs to a running serve",
                1,
                lambda _i: Sample(api_send_once(base, files), tree_peak_kib(server.pid)),
            ),
            Side(
                "the library's Sender in a running process",
                1,
                lambda _i: Sample(library.send(), tree_peak_kib(library.proc.pid)),
            ),
            runs=runs,
            state="warm",
            kind="time",
            amount=len(files),
            unit="files",
            goal=RATIO_GOAL,
        )
    finally:
        library.close()


def cold_comparison(
    settings: Path, api_port: int, files: Sequence[Path], work: Path, runs: int
) -> Comparison:
    def serve_once(index: int) -> Sample:
        began = time.perf_counter()
        with serve(settings, api_port, work / f"serve-cold-{index}.log") as (base, proc):
            api_send_once(base, files)
            wall = time.perf_counter() - began
            return Sample(wall, tree_peak_kib(proc.pid))

    def cli_once(index: int) -> Sample:
        argv = sendtopacs_argv(
            "--settings", str(settings), "send", *map(str, files), "--to", "pacs",
            "--patient-id", PATIENT_ID, "-q",
        )  # fmt: skip
        return run_streams([argv], work / "logs", f"cli-{index}")

    return compare(
        f"{len(files)}-file upload, cold vs cold",
        Side("sendtopacs serve started + POST /api/v1/send/pacs", 1, serve_once),
        Side("sendtopacs send FILES --to pacs", 1, cli_once),
        runs=runs,
        state="cold",
        kind="time",
        amount=len(files),
        unit="files",
        goal=None,
    )


# --- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> int:
    check_cli("serve")
    count = SMOKE_FILES if args.smoke else None
    files = make_inputs(work / "inputs", *((count, count) if count else ()))
    photos = [path for path in files if path.suffix == ".jpg"]
    photo_mb = statistics.mean(path.stat().st_size for path in photos) / 1e6
    settings = work / "settings.json"
    api_port = free_port()
    with storescp(work, "+xa") as pacs_port:
        write_settings(settings, api_port=api_port, pacs_port=pacs_port, temp=work / "temp")
        with serve(settings, api_port, work / "serve.log") as (base, server):
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
            warm = warm_comparison(base, server, settings, files, work, runs=args.runs)
        cold = cold_comparison(settings, api_port, files, work, args.runs)
    comparisons = [warm, cold]
    lines = [
        machine_line(
            f"httpx {httpx.__version__}; server: `sendtopacs serve` (uvicorn, HTTP/1.1, no "
            "TLS) on 127.0.0.1; PACS: TCP_NODELAY=1 storescp --ignore --fork +xa on 127.0.0.1"
        ),
        "",
        f"**Request rate** ({args.clients} clients, keep-alive, Basic auth, "
        f"{args.seconds:g} s each; no peer)",
        "",
        "| request | requests | req/s | p50 ms | p95 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| `{item.label}` | {item.count} | {item.rate:.0f} | {item.p50_ms:.1f} "
            f"| {item.p95_ms:.1f} |"
            for item in loads
        ),
        "",
        f"**{len(files)}-file upload** ({len(photos)} JPEG photos of {photo_mb:.1f} MB, "
        f"{len(files) - len(photos)} PDFs; convert and send). Peak RSS of a warm side: the "
        "process's VmHWM (with its children) after each run.",
        "",
        *comparison_table(comparisons),
        f"Goal (issue 7): the API at most {RATIO_GOAL:g}x the time of the same work without it; "
        "judged on the warm vs warm row.",
    ]
    return finish(args, lines, all_met(comparisons))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    add_common_options(parser)
    args = parser.parse_args(argv)
    check_runs(parser, args)
    if args.smoke:
        args.clients, args.seconds = 2, 0.5
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be at least 1, --seconds positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workdir(run, parse_args(argv), "bench_api")


if __name__ == "__main__":
    sys.exit(main())
