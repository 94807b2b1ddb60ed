"""Send throughput and memory of ``sendtopacs send`` against DCMTK ``storescu`` and pynetdicom.

In one run, against one DCMTK ``storescp --ignore`` started with ``TCP_NODELAY=1`` on
127.0.0.1 (``--fork``, so that parallel associations are served in parallel):

- a small-file corpus: 1000 CT images of about 500 KB (512x512, 16 bit, Explicit VR LE);
- a large-file corpus: 5 multi-frame images of about 150 MB (Multi-frame Grayscale Word
  Secondary Capture, 512x512 frames, Explicit VR LE; the Pixel Data is appended in chunks
  after a header written by pydicom, so generating them needs no 150 MB array);

each sent by ``sendtopacs send`` (or, while the CLI has no ``send`` command, by our library's
``Sender`` in a child process, with 1, 2 and 4 parallel associations), by DCMTK ``storescu``
with ``TCP_NODELAY=1`` ("tuned") and without it (on the small corpus only the first
``--nagle-sample`` files, rates scaled: with small objects a delayed ACK can cost 40 ms per file),
and by pynetdicom's ``python -m pynetdicom storescu``.
Reported: files/s, MB/s (10^6 bytes), peak RSS (each command is a child process; its own peak
RSS comes from ``os.wait4`` through GNU ``/usr/bin/time``, see :func:`_run`) and the ratio to
tuned DCMTK; medians of ``--runs`` runs (peak RSS: the highest).

Goals (the issue): at least 1.0x tuned DCMTK's files/s on small files, at least 0.8x its MB/s
on large files, and a peak RSS of at most 150 MB.

Run ``python benchmarks/bench_send.py [--small N] [--large N] [--large-mb MB] [--runs N]
[--markdown PATH] [--workdir DIR]``; it needs the project installed and DCMTK
(``apt-get install dcmtk``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pydicom
import pynetdicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from bench_convert import DCMTK_DIRS, BenchmarkError, run_in_workdir, run_measured

CALLED_AET: Final = "STORESCP"
CALLING_AET: Final = "SENDTOPACS"
ROWS: Final = 512
COLUMNS: Final = 512
FRAME_BYTES: Final = ROWS * COLUMNS * 2
SEED: Final = 20240601
CT_IMAGE: Final = "1.2.840.10008.5.1.4.1.1.2"
MF_WORD_SC: Final = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC
UID_PREFIX: Final = "1.2.826.0.1.3680043.10.1234."
DEFAULT_SMALL: Final = 1000
DEFAULT_LARGE: Final = 5
DEFAULT_LARGE_MB: Final = 150
DEFAULT_NAGLE_SAMPLE: Final = 200
SMALL_RATE_GOAL: Final = 1.0  # our files/s >= 1.0 x tuned DCMTK's, small files
LARGE_RATE_GOAL: Final = 0.8  # our MB/s >= 0.8 x tuned DCMTK's, large files
RSS_GOAL_MB: Final = 150.0  # peak RSS <= 150 MB (10^6 bytes)
PARALLEL: Final = (1, 2, 4)
_CHUNK: Final = 8 << 20
TIME: Final = Path("/usr/bin/time")
_NO_SETTINGS: Final = "no-settings.json"

#: Our library, when the CLI has no ``send`` command yet: port, parallel, files/assoc, items.
LIBRARY_SCRIPT: Final = """\
import sys
from sendtopacs_core import Device, Sender
port, parallel, per_association, *items = sys.argv[1:]
device = Device(
    name="bench", ae_title="STORESCP", host="127.0.0.1", port=int(port),
    parallel_associations=int(parallel), files_per_association=int(per_association),
)
report = Sender(device, calling_ae_title="SENDTOPACS").send(items)
failed = [outcome for outcome in report.outcomes if not outcome.ok]
print(f"outcomes={len(report.outcomes)} failed={len(failed)}")
for outcome in failed[:5]:
    print(outcome.source, outcome.message)
raise SystemExit(0 if report.ok and not failed else 1)
"""


@dataclasses.dataclass(frozen=True)
class Result:
    """The median of some runs of one command over a corpus (or a sample of it)."""

    label: str
    files: int
    nbytes: int
    wall_s: float
    peak_rss_kib: int
    runs: int
    note: str = ""

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / 1e6 / self.wall_s

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_kib * 1024 / 1e6


@dataclasses.dataclass(frozen=True)
class Corpus:
    name: str
    folder: Path
    files: tuple[Path, ...]

    @property
    def nbytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


# --- inputs ---------------------------------------------------------------------------------


def _header(sop_class: str, index: int, *, frames: int, study: str, series: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid(UID_PREFIX)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = "20240601"
    ds.Modality = "CT" if sop_class == CT_IMAGE else "OT"
    ds.PatientName = "Bench^Send"
    ds.PatientID = "BENCHSEND"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if sop_class == CT_IMAGE:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.KVP = 120
        ds.SliceThickness = 1
        ds.ImagePositionPatient = [0, 0, index]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
    return ds


def _write(path: Path, header: Dataset, pixels: Sequence[bytes | memoryview]) -> None:
    """The header written by pydicom, then the Pixel Data element (OW) appended in chunks."""
    length = sum(len(chunk) for chunk in pixels)
    with path.open("wb") as out:
        dcmwrite(out, header, enforce_file_format=True)
        out.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for chunk in pixels:
            out.write(chunk)


def generate(workdir: Path, *, small: int, large: int, large_mb: float) -> tuple[Corpus, Corpus]:
    """Write both corpora (unique UIDs, deterministic pixels) unless ``workdir`` holds them."""
    rng = np.random.default_rng(SEED)
    # 12-bit noise over a smooth ramp: a CT-sized frame, different for each file by a roll.
    ramp = (np.arange(ROWS * COLUMNS, dtype=np.uint32) % 4096).astype(np.uint16)
    noise = rng.integers(0, 64, ROWS * COLUMNS, dtype=np.uint16)
    frame = ((ramp + noise) & 0x0FFF).astype("<u2")
    study = generate_uid(UID_PREFIX)
    corpora = []
    for name, count, frames, sop_class in (
        ("small", small, 1, CT_IMAGE),
        ("large", large, max(1, round(large_mb * 1e6 / FRAME_BYTES)), MF_WORD_SC),
    ):
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        existing = sorted(folder.glob("*.dcm"))
        if len(existing) == count and all(
            path.stat().st_size > frames * FRAME_BYTES for path in existing
        ):
            corpora.append(Corpus(name, folder, tuple(existing)))
            continue
        for path in existing:
            path.unlink()
        series = generate_uid(UID_PREFIX)
        frames_per_chunk = max(1, _CHUNK // FRAME_BYTES)
        for index in range(count):
            pixels = np.roll(frame, index * 7).tobytes()
            header = _header(sop_class, index, frames=frames, study=study, series=series)
            chunk = pixels * min(frames, frames_per_chunk)
            full, rest = divmod(frames, frames_per_chunk)
            pieces: list[bytes | memoryview] = [chunk] * full
            if rest:
                pieces.append(memoryview(chunk)[: rest * FRAME_BYTES])
            _write(folder / f"{name}{index:05d}.dcm", header, pieces)
        corpora.append(Corpus(name, folder, tuple(sorted(folder.glob("*.dcm")))))
    return corpora[0], corpora[1]


# --- the receiver ---------------------------------------------------------------------------


def find_dcmtk(tool: str) -> Path:
    """A DCMTK tool by its ``--version`` output (pynetdicom's scripts shadow some on PATH)."""
    for directory in DCMTK_DIRS:
        candidate = directory / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            version = subprocess.run(
                [str(candidate), "--version"], capture_output=True, text=True, check=False
            )
            if "dcmtk" in (version.stdout + version.stderr).lower():
                return candidate
    raise BenchmarkError(f"DCMTK's {tool} was not found: install it with apt-get install dcmtk")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _nodelay_env(on: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "TCP_NODELAY"}
    if on:
        env["TCP_NODELAY"] = "1"
    return env


@contextlib.contextmanager
def storescp(work: Path) -> Iterator[int]:
    """``TCP_NODELAY=1 storescp --ignore --fork`` on a free port; yields the port."""
    binary, echoscu = find_dcmtk("storescp"), find_dcmtk("echoscu")
    port = _free_port()
    argv = [str(binary), "--fork", "--ignore", "-aet", CALLED_AET, "-od", str(work), str(port)]
    with (work / "storescp.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=_nodelay_env(True)
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            echo = [str(echoscu), "-aec", CALLED_AET, "-to", "2", "127.0.0.1", str(port)]
            if subprocess.run(echo, capture_output=True, check=False).returncode == 0:
                break
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


# --- the senders ----------------------------------------------------------------------------


def cli_has_send() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "sendtopacs_adapters", "send", "--help"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return probe.returncode == 0


@dataclasses.dataclass(frozen=True)
class Command:
    label: str
    argv: tuple[str, ...]
    check_log: bool = False  # our library script prints outcomes=N failed=0


def our_commands(corpus: Corpus, port: int, work: Path, *, cli: bool) -> list[Command]:
    """``sendtopacs send`` (or the library's Sender) with 1, 2 and 4 parallel associations."""
    commands = []
    for parallel in PARALLEL:
        if parallel > 1 and len(corpus.files) < parallel:
            continue
        # Associations run in parallel only for several groups of files: split them evenly.
        per_association = 0 if parallel == 1 else -(-len(corpus.files) // parallel)
        split = f" --files-per-association {per_association}" if per_association else ""
        if cli:
            label = "sendtopacs send" + (f" --associations {parallel}{split}" if split else "")
            argv: tuple[str, ...] = (
                sys.executable, "-m", "sendtopacs_adapters", "send", str(corpus.folder),
                "--settings", str(work / _NO_SETTINGS), "--host", "127.0.0.1", "--port",
                str(port), "--called-aet", CALLED_AET, "-q",
                *(("--associations", str(parallel), "--files-per-association",
                   str(per_association)) if per_association else ()),
            )  # fmt: skip
        else:
            label = f"sendtopacs library Sender, {parallel} association(s){split}"
            argv = (
                sys.executable, "-c", LIBRARY_SCRIPT, str(port), str(parallel),
                str(per_association), str(corpus.folder),
            )  # fmt: skip
        commands.append(Command(label, argv, check_log=not cli))
    return commands


def dcmtk_command(
    storescu: Path, port: int, files: Sequence[Path] | Path, *, nodelay: bool
) -> Command:
    where: list[str] = (
        ["+sd", "+r", str(files)] if isinstance(files, Path) else list(map(str, files))
    )
    label = (
        "DCMTK storescu, TCP_NODELAY=1 (tuned)" if nodelay else "DCMTK storescu, default (Nagle)"
    )
    # env(1) execs storescu in the same process, so wait4 still measures storescu itself.
    env = ("/usr/bin/env", "TCP_NODELAY=1") if nodelay else ("/usr/bin/env", "-u", "TCP_NODELAY")
    return Command(
        label,
        (
            *env,
            str(storescu),
            "-aet",
            CALLING_AET,
            "-aec",
            CALLED_AET,
            "127.0.0.1",
            str(port),
            *where,
        ),
    )


def pynetdicom_command(corpus: Corpus, port: int) -> Command:
    return Command(
        "pynetdicom storescu app",
        (
            sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(port),
            str(corpus.folder), "-r", "-aet", CALLING_AET, "-aec", CALLED_AET,
        ),
    )  # fmt: skip


def _run(argv: Sequence[str], log: Path) -> tuple[float, int]:
    """Wall time (s) and the command's own peak RSS (KiB).

    ``os.wait4`` alone over-reports a small command: Linux keeps in the child's peak the RSS
    of the address space it replaced at ``exec``, which is this big Python process
    (subprocess forks with vfork). GNU time is a small process in between; it reports the
    peak of the command it runs (wait4 of its own child). Without it the number is a bound.
    """
    if not TIME.is_file():
        return run_measured(argv, log=log)
    rss_file = log.with_suffix(".rss")
    wall, _ = run_measured([str(TIME), "-f", "%M", "-o", str(rss_file), *argv], log=log)
    return wall, int(rss_file.read_text(encoding="ascii").split()[-1])


def measure(  # noqa: PLR0917 - one call site
    corpus: str, command: Command, files: Sequence[Path], work: Path, runs: int, note: str = ""
) -> Result:
    walls: list[float] = []
    peak = 0
    name = f"{corpus} {command.label}".replace(" ", "_").replace("/", "_")
    log = work / "logs" / f"{name[:80]}.log"
    log.parent.mkdir(exist_ok=True)
    for _ in range(runs):
        wall, rss = _run(command.argv, log)
        if command.check_log:
            text = log.read_text(encoding="utf-8", errors="replace")
            if f"outcomes={len(files)} failed=0" not in text:
                raise BenchmarkError(f"{command.label}: not every file was sent:\n{text[-2000:]}")
        walls.append(wall)
        peak = max(peak, rss)
        print(f"    {command.label}: {wall:.2f} s, {rss / 1024:.1f} MiB", flush=True)
    nbytes = sum(path.stat().st_size for path in files)
    return Result(command.label, len(files), nbytes, statistics.median(walls), peak, runs, note)


# --- report ---------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def table(title: str, results: Sequence[Result], reference: Result) -> list[str]:
    lines = [
        f"**{title}**",
        "",
        "| command | files | runs | wall s (median) | files/s | MB/s | peak RSS (MiB) "
        "| ratio vs tuned DCMTK |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        ratio = result.files_per_s / reference.files_per_s
        label = result.label + (f" ({result.note})" if result.note else "")
        lines.append(
            f"| {label} | {result.files} | {result.runs} | {result.wall_s:.2f} "
            f"| {result.files_per_s:.1f} | {result.mb_per_s:.0f} | {result.peak_rss_mib:.1f} "
            f"| {ratio:.2f}x |"
        )
    return [*lines, ""]


def verdicts(small: Sequence[Result], large: Sequence[Result]) -> tuple[list[str], bool]:
    def ours(results: Sequence[Result]) -> list[Result]:
        return [result for result in results if result.label.startswith("sendtopacs")]

    def tuned(results: Sequence[Result]) -> Result:
        return next(result for result in results if "tuned" in result.label)

    lines = ["**Goals** (each sendtopacs configuration)", ""]
    all_met = True
    for result in ours(small):
        ratio = result.files_per_s / tuned(small).files_per_s
        met = ratio >= SMALL_RATE_GOAL and result.peak_rss_mb <= RSS_GOAL_MB
        all_met &= met
        lines.append(
            f"- small, {result.label}: {ratio:.2f}x tuned DCMTK's files/s (goal >= "
            f"{SMALL_RATE_GOAL}x: {_verdict(ratio >= SMALL_RATE_GOAL)}); peak RSS "
            f"{result.peak_rss_mb:.0f} MB (goal <= {RSS_GOAL_MB:.0f} MB: "
            f"{_verdict(result.peak_rss_mb <= RSS_GOAL_MB)})"
        )
    for result in ours(large):
        ratio = result.mb_per_s / tuned(large).mb_per_s
        met = ratio >= LARGE_RATE_GOAL and result.peak_rss_mb <= RSS_GOAL_MB
        all_met &= met
        lines.append(
            f"- large, {result.label}: {ratio:.2f}x tuned DCMTK's MB/s (goal >= "
            f"{LARGE_RATE_GOAL}x: {_verdict(ratio >= LARGE_RATE_GOAL)}); peak RSS "
            f"{result.peak_rss_mb:.0f} MB (goal <= {RSS_GOAL_MB:.0f} MB: "
            f"{_verdict(result.peak_rss_mb <= RSS_GOAL_MB)})"
        )
    return [*lines, ""], all_met


def _dcmtk_version(tool: Path) -> str:
    out = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=False)
    first = next((line.strip(" $") for line in out.stdout.splitlines() if line.strip(" $")), "?")
    return first.replace("dcmtk: ", "DCMTK ")


# --- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> int:
    storescu = find_dcmtk("storescu")
    print(
        f"generating {args.small} small and {args.large} x {args.large_mb:g} MB files in "
        f"{work} ...",
        flush=True,
    )
    small, large = generate(work, small=args.small, large=args.large, large_mb=args.large_mb)
    cli = cli_has_send()
    if not cli:
        print("the CLI has no `send` command yet: measuring the library's Sender", flush=True)
    received = work / "received"  # storescp --ignore writes nothing; its -od must exist
    received.mkdir(exist_ok=True)
    results: dict[str, list[Result]] = {}
    with storescp(received) as port:
        for corpus in (small, large):
            if not corpus.files:
                continue
            print(f"measuring the {corpus.name} corpus ({len(corpus.files)} files) ...")
            sample = list(corpus.files)
            note = ""
            if corpus is small and len(sample) > args.nagle_sample:
                sample = sample[: args.nagle_sample]
                note = f"first {len(sample)} files only; rates scale"
            commands = [
                *[(c, corpus.files, "") for c in our_commands(corpus, port, work, cli=cli)],
                (dcmtk_command(storescu, port, corpus.folder, nodelay=True), corpus.files, ""),
                (dcmtk_command(storescu, port, sample, nodelay=False), sample, note),
                (pynetdicom_command(corpus, port), corpus.files, ""),
            ]
            results[corpus.name] = [
                measure(corpus.name, command, files, work, args.runs, note)
                for command, files, note in commands
            ]
    small_results, large_results = results.get("small", []), results.get("large", [])
    lines = [
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, pydicom {pydicom.__version__}, pynetdicom "
        f"{pynetdicom.__version__}, {_dcmtk_version(storescu)}; receiver: TCP_NODELAY=1 "
        f"storescp --ignore --fork on 127.0.0.1 (max PDU 16384). Small: {len(small.files)} CT "
        f"512x512x16 bit, {small.nbytes / max(1, len(small.files)) / 1e3:.0f} KB each; large: "
        f"{len(large.files)} multi-frame SC, "
        f"{large.nbytes / max(1, len(large.files)) / 1e6:.0f} MB each; Explicit VR LE. "
        f"Median of {args.runs} run(s); MB = 10^6 bytes.",
        "",
    ]
    if small_results:
        reference = next(r for r in small_results if "tuned" in r.label)
        lines += table("Small files", small_results, reference)
    if large_results:
        reference = next(r for r in large_results if "tuned" in r.label)
        lines += table("Large files", large_results, reference)
    goal_lines, all_met = verdicts(small_results, large_results)
    report = "\n".join(lines + goal_lines)
    print()
    print(report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report, encoding="utf-8")
        print(f"written to {args.markdown}")
    return 1 if args.check and not all_met else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=DEFAULT_SMALL, help="~500 KB files")
    parser.add_argument("--large", type=int, default=DEFAULT_LARGE, help="large files")
    parser.add_argument(
        "--large-mb", type=float, default=DEFAULT_LARGE_MB, help="size of each large file (MB)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    parser.add_argument(
        "--nagle-sample",
        type=int,
        default=DEFAULT_NAGLE_SAMPLE,
        help="small files sent by storescu without TCP_NODELAY (about 40 ms each)",
    )
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report here")
    parser.add_argument(
        "--workdir", type=Path, metavar="DIR", help="keep the corpora here (reused when present)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    args = parser.parse_args(argv)
    if min(args.small, args.large, args.runs, args.nagle_sample) < 0 or args.runs < 1:
        parser.error("counts must not be negative, --runs at least 1")
    if args.small + args.large == 0:
        parser.error("nothing to send")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_in_workdir(run, args, "bench_send")


if __name__ == "__main__":
    sys.exit(main())
