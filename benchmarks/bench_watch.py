"""Latency and throughput of ``sendtopacs watch`` against DCMTK ``storescu``.

In one run, against one DCMTK ``storescp --ignore --fork`` started with ``TCP_NODELAY=1`` on
127.0.0.1, with a settings file written by the benchmark (one device: that storescp; one
monitor on a temporary folder, ``remove_sent`` true, its own ``--journal``):

- latency, one file at a time: ``sendtopacs watch --json`` runs as a child; the benchmark
  writes one small DICOM file (a 160x160, 16-bit CT image, about 52 KB) into the watched
  folder with a plain write-and-close, notes the time right after the close, and waits for
  the watcher's ``sent`` event for that file before the next one (after a random pause, so
  that files close at every phase of the watcher's tick and scan). The latency is the
  event's ``time`` (stamped when the PACS answered success) minus the close time; the same
  clock, the same machine. Native mode (``interval_s`` 30, so files are picked up by
  operating-system events) and polling mode (``interval_s`` 1); ``settle_s`` 0.5 in both,
  which is part of the latency by design (a file must stay unchanged that long before it is
  taken), and, for information, native mode with ``settle_s`` 0. Goals (the issue):
  p95 <= 1 s native, p95 <= interval + 1 s polling.
- throughput of a 1000-file drop, like with like: ``sendtopacs watch --once`` on the files
  already settled in the folder (one process, one association) against DCMTK ``storescu``
  (``TCP_NODELAY=1``, one process, one association) sending the same files; both cold (every
  run starts the command: start-up included), ``--runs`` runs interleaved, the ratio the
  median of the per-run ratios. No goal (issue 6 asks for the figure).
- for information, without a peer (no peer runs warm): the same drop copied into the folder
  of a running watcher (native, then polling), timed from the last file's close to the
  ``time`` of the last ``sent`` event.

Run ``python benchmarks/bench_watch.py [--latency-files N] [--drop N] [--runs N]
[--settle S] [--smoke] [--markdown PATH] [--workdir DIR] [--check]``; it needs the project
installed and DCMTK (``apt-get install dcmtk``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from _bench import (
    CALLED_AET,
    CALLING_AET,
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
    dcmtk_version,
    find_dcmtk,
    finish,
    machine_line,
    nodelay_env,
    run_in_workdir,
    run_streams,
    sendtopacs_argv,
    storescp,
)

SIDE: Final = 160  # 160x160x16 bit: 51,200 bytes of pixels
SEED: Final = 20240601
CT_IMAGE: Final = "1.2.840.10008.5.1.4.1.1.2"
UID_PREFIX: Final = "1.2.826.0.1.3680043.10.1234."
DEFAULT_LATENCY_FILES: Final = 30
DEFAULT_DROP: Final = 1000
DEFAULT_SETTLE_S: Final = 0.5
NATIVE_INTERVAL_S: Final = 30.0  # native mode: a rescan only every 30 s, events do the work
POLLING_INTERVAL_S: Final = 1.0
NATIVE_P95_GOAL_S: Final = 1.0  # native: p95 <= 1 s
POLLING_EXTRA_GOAL_S: Final = 1.0  # polling: p95 <= interval + 1 s
WARMUP: Final = 2  # files sent first by each watcher, not counted (lazy imports, first connection)
EVENT_TIMEOUT_S: Final = 30.0
DROP_TIMEOUT_S: Final = 600.0
START_TIMEOUT_S: Final = 30.0


# --- inputs ---------------------------------------------------------------------------------


def _dataset(index: int, pixels: bytes, *, study: str, series: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(CT_IMAGE)
    meta.MediaStorageSOPInstanceUID = generate_uid(UID_PREFIX)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = "20240601"
    ds.Modality = "CT"
    ds.PatientName = "Bench^Watch"
    ds.PatientID = "BENCHWATCH"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = SIDE
    ds.Columns = SIDE
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.PixelSpacing = [0.5, 0.5]
    ds.ImagePositionPatient = [0, 0, index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelData = pixels
    return ds


def generate(folder: Path, count: int, prefix: str) -> list[Path]:
    """``count`` CT images (unique UIDs, deterministic pixels) unless ``folder`` holds them."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.dcm"))
    if len(existing) == count and all(path.stat().st_size > SIDE * SIDE * 2 for path in existing):
        return existing
    for path in existing:
        path.unlink()
    rng = np.random.default_rng(SEED)
    ramp = (np.arange(SIDE * SIDE, dtype=np.uint32) % 4096).astype(np.uint16)
    frame = ((ramp + rng.integers(0, 64, SIDE * SIDE, dtype=np.uint16)) & 0x0FFF).astype("<u2")
    study, series = generate_uid(UID_PREFIX), generate_uid(UID_PREFIX)
    for index in range(count):
        ds = _dataset(index, np.roll(frame, index * 7).tobytes(), study=study, series=series)
        dcmwrite(folder / f"{prefix}{index:05d}.dcm", ds, enforce_file_format=True)
    return sorted(folder.glob("*.dcm"))


# --- the watcher ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Event:
    """One line of ``sendtopacs watch --json``, with the time it reached the benchmark."""

    kind: str
    path: str
    time: float  # stamped by the watcher
    arrival: float  # read from its stdout
    message: str


def write_settings(
    path: Path, *, folder: Path, port: int, mode: str, interval_s: float, settle_s: float
) -> None:
    device = {"name": "pacs", "ae_title": CALLED_AET, "host": "127.0.0.1", "port": port}
    monitor = {
        "name": "bench",
        "directory": str(folder),
        "mode": mode,
        "interval_s": interval_s,
        "settle_s": settle_s,
        "remove_sent": True,
        "retry_count": 0,  # a failure is a benchmark error, not something to wait out
        "device": "pacs",
    }
    document = {"main": {"ae_title": CALLING_AET}, "devices": [device], "monitors": [monitor]}
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def watch_argv(settings: Path, journal: Path, *extra: str) -> list[str]:
    return sendtopacs_argv(
        "--settings", str(settings), "watch", "--json", "--journal", str(journal), *extra
    )


class Watcher:
    """``sendtopacs watch --json`` as a child; a thread reads its events into a queue."""

    def __init__(
        self, work: Path, name: str, *, port: int, mode: str, interval_s: float, settle_s: float
    ) -> None:
        self.base = work / name
        if self.base.exists():
            shutil.rmtree(self.base)
        self.folder = self.base / "in"
        self.folder.mkdir(parents=True)
        self.settings = self.base / "settings.json"
        self.journal = self.base / "journal.sqlite"
        self.stderr = self.base / "watch.stderr"
        write_settings(
            self.settings,
            folder=self.folder,
            port=port,
            mode=mode,
            interval_s=interval_s,
            settle_s=settle_s,
        )
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.taken: dict[str, float] = {}  # path -> the time of its `taken` event
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> Watcher:
        with self.stderr.open("w", encoding="utf-8") as err:
            self.proc = subprocess.Popen(
                watch_argv(self.settings, self.journal),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                bufsize=1,
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while "monitor(s)" not in self.stderr.read_text(encoding="utf-8"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"the watcher did not start:\n{self._tail()}")
            time.sleep(0.05)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        code = self.stop()
        if exc_type is None and code != 0:
            raise BenchmarkError(f"the watcher exited with {code} on SIGTERM:\n{self._tail()}")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            arrival = time.time()
            with contextlib.suppress(ValueError):
                doc: dict[str, Any] = json.loads(line)
                self.events.put(
                    Event(
                        kind=str(doc.get("event")),
                        path=str(doc.get("path", "")),
                        time=float(doc.get("time", arrival)),
                        arrival=arrival,
                        message=str(doc.get("message", "")),
                    )
                )
        self.events.put(None)  # end of output

    def _tail(self) -> str:
        text = self.stderr.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-15:])

    def stop(self) -> int:
        """SIGTERM (a graceful stop, exit status 0), then kill if it does not stop."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def next_sent(self, timeout: float) -> Event:
        """The next ``sent`` event; a ``failed`` or ``retry`` event is an error."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchmarkError(
                    f"no `sent` event within {timeout:.0f} s:\n{self._tail()}"
                ) from None
            if event is None:
                raise BenchmarkError(f"the watcher stopped:\n{self._tail()}")
            if event.kind in ("failed", "retry", "problem"):
                raise BenchmarkError(f"{event.kind}: {event.path}: {event.message}")
            if event.kind == "sent":
                return event
            if event.kind == "taken":
                self.taken[event.path] = event.time


def drop_one(watcher: Watcher, data: bytes, name: str) -> tuple[float, Event, float]:
    """Write and close one file; return its close time, its ``sent`` event and taken time."""
    watcher.taken.clear()
    with (watcher.folder / name).open("wb") as out:
        out.write(data)
    closed = time.time()
    while True:
        event = watcher.next_sent(EVENT_TIMEOUT_S)
        if event.path == name:
            return closed, event, watcher.taken.get(name, float("nan"))


# --- latency --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Latency:
    label: str
    mode: str
    interval_s: float
    settle_s: float
    latencies: tuple[float, ...]  # sent event time - close time
    pickups: tuple[float, ...]  # taken event time - close time (settle window included)
    sends: tuple[float, ...]  # sent - taken
    delivered: tuple[float, ...]  # the event line read - its time stamp
    goal_s: float | None

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)


def percentile(values: Sequence[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def measure_latency(
    work: Path,
    port: int,
    sources: Sequence[Path],
    *,
    mode: str,
    settle_s: float,
    goal: bool,
) -> Latency:
    interval = POLLING_INTERVAL_S if mode == "polling" else NATIVE_INTERVAL_S
    label = f"{mode}, interval_s {interval:g}, settle_s {settle_s:g}"
    print(f"latency: {label} ({len(sources) - WARMUP} files + {WARMUP} warm-up) ...", flush=True)
    rng = np.random.default_rng(SEED)
    # Pause before each file so that it closes at a random phase of the 0.2 s tick (and of the
    # scan interval in polling mode): files dropped right after a `sent` event would otherwise
    # all land at the same phase.
    jitter = interval if mode == "polling" else 0.5
    name = f"latency-{mode}-{str(settle_s).replace('.', '_')}"
    latencies, pickups, sends, delivered = [], [], [], []
    with Watcher(
        work, name, port=port, mode=mode, interval_s=interval, settle_s=settle_s
    ) as watcher:
        for index, source in enumerate(sources):  # the first WARMUP ones are not counted
            data = source.read_bytes()
            time.sleep(float(rng.uniform(0, jitter)))
            closed, sent, taken = drop_one(watcher, data, f"file{index:04d}.dcm")
            if index < WARMUP:
                continue
            latencies.append(sent.time - closed)
            pickups.append(taken - closed)
            sends.append(sent.time - taken)
            delivered.append(sent.arrival - sent.time)
    result = Latency(
        label,
        mode,
        interval,
        settle_s,
        tuple(latencies),
        tuple(pickups),
        tuple(sends),
        tuple(delivered),
        (NATIVE_P95_GOAL_S if mode == "native" else interval + POLLING_EXTRA_GOAL_S)
        if goal
        else None,
    )
    print(f"    p50 {result.p50:.3f} s, p95 {result.p95:.3f} s", flush=True)
    return result


# --- throughput -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Throughput:
    label: str
    files: int
    walls: tuple[float, ...]
    note: str = ""
    extra: str = ""

    @property
    def wall_s(self) -> float:
        return statistics.median(self.walls)

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s


def measure_drop(
    work: Path, port: int, files: Sequence[Path], *, mode: str, settle_s: float, runs: int
) -> Throughput:
    """Copy all ``files`` into a running watcher's folder; last close -> last ``sent``."""
    interval = POLLING_INTERVAL_S if mode == "polling" else NATIVE_INTERVAL_S
    label = f"sendtopacs watch ({mode}, interval_s {interval:g}, settle_s {settle_s:g}), drop"
    print(f"throughput: {label} ({len(files)} files, {runs} run(s)) ...", flush=True)
    walls, from_first, late, batches = [], [], [], []
    with Watcher(
        work, f"drop-{mode}", port=port, mode=mode, interval_s=interval, settle_s=settle_s
    ) as watcher:
        for index, source in enumerate(files[:WARMUP]):
            drop_one(watcher, source.read_bytes(), f"warmup{index}.dcm")
        for run in range(runs):
            names = {source.name for source in files}
            first_close = 0.0
            for source in files:
                shutil.copyfile(source, watcher.folder / source.name)
                first_close = first_close or time.time()
            last_close = time.time()
            sent: list[Event] = []
            deadline = time.monotonic() + DROP_TIMEOUT_S
            while names:
                event = watcher.next_sent(max(1.0, deadline - time.monotonic()))
                names.discard(event.path)
                sent.append(event)
            last = max(event.time for event in sent)
            walls.append(last - last_close)
            from_first.append(last - first_close)
            late.append(max(event.arrival - event.time for event in sent))
            # Events come out when a step ends: gaps in arrival show the batches (associations).
            arrivals = sorted(event.arrival for event in sent)
            batches.append(1 + sum(1 for a, b in itertools.pairwise(arrivals) if b - a > 0.1))
            leftover = [path for path in watcher.folder.rglob("*") if path.is_file()]
            print(
                f"    run {run + 1}: {walls[-1]:.2f} s after the last close "
                f"({from_first[-1]:.2f} s after the first; copying took "
                f"{last_close - first_close:.2f} s); {batches[-1]} burst(s) of events, "
                f"the latest reached stdout {late[-1]:.2f} s after its time stamp"
                + (f"; {len(leftover)} file(s) left in the folder" if leftover else ""),
                flush=True,
            )
    beyond = statistics.median(walls) - settle_s
    extra = (
        f"from the first close: {statistics.median(from_first):.2f} s; without the settle "
        f"window: {len(files) / beyond:.0f} files/s; events in "
        f"{statistics.median(batches):g} burst(s); the last `sent` line reached stdout up to "
        f"{max(late):.2f} s after its time stamp"
    )
    return Throughput(
        label, len(files), tuple(walls), note=f"settle window {settle_s:g} s included", extra=extra
    )


def compare_once(
    work: Path, port: int, files: Sequence[Path], *, settle_s: float, runs: int, storescu: Path
) -> Comparison:
    """``sendtopacs watch --once`` on the settled files against storescu on the same files."""
    base = work / "once"
    if base.exists():
        shutil.rmtree(base)
    folder = base / "in"
    folder.mkdir(parents=True)
    settings, journal = base / "settings.json", base / "journal.sqlite"
    write_settings(
        settings, folder=folder, port=port, mode="native", interval_s=30, settle_s=settle_s
    )
    logs = work / "logs"

    def prepare(_index: int) -> None:
        for source in files:
            shutil.copyfile(source, folder / source.name)
        time.sleep(settle_s + 0.2)  # settled: the command needs not wait for them

    def run_once(index: int) -> Sample:
        return run_streams([watch_argv(settings, journal, "--once")], logs, f"once-{index}")

    def check(index: int) -> None:
        text = (logs / f"once-{index}-0.log").read_text(encoding="utf-8", errors="replace")
        sent = text.count('"event": "sent"')
        if sent != len(files) or any(folder.iterdir()):
            raise BenchmarkError(f"--once sent {sent} of {len(files)} files:\n{text[-2000:]}")

    def run_storescu(index: int) -> Sample:
        argv = [
            str(storescu), "-aet", CALLING_AET, "-aec", CALLED_AET, "127.0.0.1", str(port),
            *map(str, files),
        ]  # fmt: skip
        return run_streams([argv], logs, f"storescu-{index}", env=nodelay_env(True))

    return compare(
        f"{len(files)}-file drop, 1 vs 1",
        Side(
            "sendtopacs watch --once (files settled)",
            1,
            run_once,
            associations=1,
            prepare=prepare,
            check=check,
        ),
        Side("storescu TCP_NODELAY=1", 1, run_storescu, associations=1),
        runs=runs,
        state="cold",
        kind="rate",
        amount=len(files),
        unit="files",
    )


# --- report ---------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def latency_table(results: Sequence[Latency]) -> tuple[list[str], bool]:
    lines = [
        "**Latency, one file at a time** (close of the file -> the watcher's `sent` event; "
        "seconds)",
        "",
        "| mode | files | p50 | p95 | max | close -> taken, p50 (settle included) "
        "| taken -> sent, p50 | event -> stdout, p95 | goal (p95) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    all_met = True
    for result in results:
        goal = "(information)"
        if result.goal_s is not None:
            met = result.p95 <= result.goal_s
            all_met &= met
            goal = f"<= {result.goal_s:g} s: {_verdict(met)}"
        lines.append(
            f"| {result.label} | {len(result.latencies)} | {result.p50:.3f} | "
            f"{result.p95:.3f} | {max(result.latencies):.3f} | "
            f"{statistics.median(result.pickups):.3f} | {statistics.median(result.sends):.3f} | "
            f"{percentile(result.delivered, 95):.3f} | {goal} |"
        )
    return [*lines, ""], all_met


def throughput_table(results: Sequence[Throughput]) -> list[str]:
    lines = [
        "**A running (warm) watcher, for information** (no peer runs warm; the like-for-like "
        "row is the `--once` one above)",
        "",
        "| command | files | runs | wall s (median) | files/s | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for result in results:
        lines.append(
            f"| {result.label} | {result.files} | {len(result.walls)} | {result.wall_s:.2f} "
            f"| {result.files_per_s:.0f} | {result.note} |"
        )
    lines.append("")
    lines += [f"- {result.label}: {result.extra}" for result in results if result.extra]
    return [*lines, ""]


# --- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> int:
    check_cli("watch")
    storescu = find_dcmtk("storescu")
    print(f"generating files in {work} ...", flush=True)
    latency_files = generate(work / "latency-src", args.latency_files + WARMUP, "lat")
    drop_files = generate(work / "drop-src", args.drop, "drop") if args.drop else []
    latencies: list[Latency] = []
    throughputs: list[Throughput] = []
    comparisons: list[Comparison] = []
    with storescp(work) as port:
        if args.latency_files:
            for mode, settle, goal in (
                ("native", args.settle, True),
                ("polling", args.settle, True),
                ("native", 0.0, False),
            ):
                if not goal and args.settle == 0:
                    continue  # measured already
                latencies.append(
                    measure_latency(
                        work, port, latency_files, mode=mode, settle_s=settle, goal=goal
                    )
                )
        if drop_files:
            comparisons.append(
                compare_once(
                    work,
                    port,
                    drop_files,
                    settle_s=args.settle,
                    runs=args.runs,
                    storescu=storescu,
                )
            )
            throughputs = [
                measure_drop(
                    work, port, drop_files, mode="native", settle_s=args.settle, runs=args.runs
                ),
                measure_drop(
                    work, port, drop_files, mode="polling", settle_s=args.settle, runs=args.runs
                ),
            ]
    size = sum(path.stat().st_size for path in drop_files or latency_files)
    count = len(drop_files or latency_files)
    lines = [
        machine_line(
            f"pydicom {pydicom.__version__}, {dcmtk_version(storescu)}; receiver: "
            "TCP_NODELAY=1 storescp --ignore --fork on 127.0.0.1. Files: CT "
            f"{SIDE}x{SIDE}x16 bit, Explicit VR LE, {size / count / 1e3:.0f} KB each. "
            f"Latencies: {args.latency_files} files after {WARMUP} warm-up files per watcher; "
            f"throughput: {args.runs} run(s) of each, each running watcher warmed up by "
            f"{WARMUP} files"
        ),
        "",
    ]
    latency_met = True
    if latencies:
        table, latency_met = latency_table(latencies)
        lines += table
    if comparisons:
        lines += ["**Throughput, like with like**", "", *comparison_table(comparisons)]
    if throughputs:
        lines += throughput_table(throughputs)
    rerun = ["python benchmarks/bench_watch.py"]
    if args.latency_files != DEFAULT_LATENCY_FILES:
        rerun.append(f"--latency-files {args.latency_files}")
    if args.drop != DEFAULT_DROP:
        rerun.append(f"--drop {args.drop}")
    rerun.append(f"--runs {args.runs} --settle {args.settle:g} --markdown PATH")
    lines += [f"Rerun: `{' '.join(rerun)}`", ""]
    return finish(args, lines, latency_met and all_met(comparisons))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--latency-files",
        type=int,
        default=DEFAULT_LATENCY_FILES,
        help="files sent one at a time, per mode (0: no latency measurement)",
    )
    parser.add_argument(
        "--drop", type=int, default=DEFAULT_DROP, help="files dropped at once (0: no throughput)"
    )
    parser.add_argument(
        "--settle", type=float, default=DEFAULT_SETTLE_S, help="the monitors' settle_s"
    )
    add_common_options(parser)
    args = parser.parse_args(argv)
    check_runs(parser, args)
    if args.smoke:
        args.latency_files, args.drop = 3, 20
    if min(args.latency_files, args.drop) < 0 or not 0 <= args.settle <= 60:
        parser.error("counts must not be negative, --settle 0 to 60")
    if args.latency_files + args.drop == 0:
        parser.error("nothing to measure")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workdir(run, parse_args(argv), "bench_watch")


if __name__ == "__main__":
    sys.exit(main())
