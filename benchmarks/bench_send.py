"""Send throughput and memory of ``sendtopacs send`` against DCMTK ``storescu`` and pynetdicom.

Against one DCMTK ``storescp --ignore --fork`` started with ``TCP_NODELAY=1`` on 127.0.0.1
(``--fork``: parallel associations are served in parallel; max PDU 16 KB, DCMTK's default):

- a small-file corpus: 1000 CT images of about 500 KB (512x512, 16 bit, Explicit VR LE);
- a large-file corpus: 5 multi-frame images of about 150 MB (Multi-frame Grayscale Word
  Secondary Capture, 512x512 frames, Explicit VR LE; the Pixel Data is appended in chunks
  after a header written by pydicom, so generating them needs no 150 MB array).

Comparisons on each corpus, like with like (cold: every run starts the commands, start-up
included), interleaved run by run:

- 1 vs 1: ``sendtopacs send FILES`` (one process, one association) against DCMTK
  ``storescu`` with ``TCP_NODELAY=1`` ("tuned", the best peer; one association);
- 2 vs 2 associations: ``sendtopacs send --associations 2`` (one process) against 2 tuned
  storescu processes at once, each on half of the files;
- 2 vs 2 processes: 2 ``sendtopacs send`` processes on the two halves against the same;
- for information, on the first ``--sample`` small files (and all large ones): DCMTK
  storescu without ``TCP_NODELAY`` (Nagle and delayed ACKs cost up to 40 ms per small file)
  and pynetdicom's ``python -m pynetdicom storescu`` app, each against ``sendtopacs send``
  on the same files.

Goals (issue 4), on the 1 vs 1 rows: at least 1.0x tuned DCMTK's files/s on small files, at
least 0.8x its MB/s on large files, and a peak RSS of at most 150 MB.

Run ``python benchmarks/bench_send.py [--small N] [--large N] [--large-mb MB] [--sample N]
[--runs N] [--smoke] [--markdown PATH] [--workdir DIR] [--check]``; it needs the project
installed and DCMTK (``apt-get install dcmtk``).
"""

from __future__ import annotations

import argparse
import dataclasses
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pydicom
import pynetdicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from _bench import (
    CALLED_AET,
    CALLING_AET,
    NO_SETTINGS,
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
    slices,
    storescp,
)

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
DEFAULT_SAMPLE: Final = 100
SMALL_RATE_GOAL: Final = 1.0  # our files/s >= 1.0 x tuned DCMTK's, small files
LARGE_RATE_GOAL: Final = 0.8  # our MB/s >= 0.8 x tuned DCMTK's, large files
RSS_GOAL_MB: Final = 150.0  # peak RSS <= 150 MB (10^6 bytes)
_CHUNK: Final = 8 << 20


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


# --- the sides ------------------------------------------------------------------------------


def ours_side(
    label: str, parts: Sequence[Sequence[Path]], port: int, work: Path, associations: int = 1
) -> Side:
    """``sendtopacs send`` once per slice, all at once; ``associations`` in each process."""
    per = -(-len(parts[0]) // associations) if associations > 1 else 0
    split = ["--associations", str(associations), "--files-per-association", str(per)]

    def run(index: int) -> Sample:
        streams = [
            sendtopacs_argv(
                "send",
                *map(str, part),
                "--settings",
                str(work / NO_SETTINGS),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--called-aet",
                CALLED_AET,
                "-q",
                *(split if associations > 1 else []),
            )
            for part in parts
        ]
        return run_streams(streams, work / "logs", f"ours-{len(parts)}-{index}")

    return Side(label, len(parts), run, associations=len(parts) * associations)


def storescu_side(
    label: str, storescu: Path, parts: Sequence[Sequence[Path]], port: int, work: Path, *,
    nodelay: bool = True,
) -> Side:  # fmt: skip
    """DCMTK storescu once per slice (one association each), all at once."""

    def run(index: int) -> Sample:
        streams = [
            [
                str(storescu),
                "-aet",
                CALLING_AET,
                "-aec",
                CALLED_AET,
                "127.0.0.1",
                str(port),
                *map(str, part),
            ]
            for part in parts
        ]
        return run_streams(
            streams, work / "logs", f"storescu-{len(parts)}-{index}", env=nodelay_env(nodelay)
        )

    return Side(label, len(parts), run, associations=len(parts))


def pynetdicom_side(files: Sequence[Path], port: int, work: Path) -> Side:
    def run(index: int) -> Sample:
        argv = [
            sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(port),
            *map(str, files), "-aet", CALLING_AET, "-aec", CALLED_AET,
        ]  # fmt: skip
        return run_streams([argv], work / "logs", f"pynetdicom-{index}")

    return Side("pynetdicom storescu app", 1, run, associations=1)


def corpus_comparisons(
    corpus: Corpus, sample: Sequence[Path], storescu: Path, port: int, work: Path, *, runs: int
) -> list[Comparison]:
    files = list(corpus.files)
    small = corpus.name == "small"
    unit, goal = ("files", SMALL_RATE_GOAL) if small else ("MB", LARGE_RATE_GOAL)

    def amount(paths: Sequence[Path]) -> float:
        return len(paths) if small else sum(path.stat().st_size for path in paths) / 1e6

    tuned = "storescu TCP_NODELAY=1"
    halves = slices(files, 2)
    plans: list[tuple[str, Side, Side, Sequence[Path], float | None]] = [
        ("1 vs 1", ours_side("sendtopacs send", [files], port, work),
         storescu_side(tuned, storescu, [files], port, work), files, goal),
    ]  # fmt: skip
    if len(halves) == 2:
        plans += [
            ("2 vs 2 associations",
             ours_side("sendtopacs send --associations 2", [files], port, work, 2),
             storescu_side(f"2 x {tuned} on 2 halves", storescu, halves, port, work),
             files, None),
            ("2 vs 2 processes",
             ours_side("2 x sendtopacs send on 2 halves", halves, port, work),
             storescu_side(f"2 x {tuned} on 2 halves", storescu, halves, port, work),
             files, None),
        ]  # fmt: skip
    plans += [
        ("1 vs 1, Nagle peer", ours_side("sendtopacs send", [sample], port, work),
         storescu_side("storescu, default (Nagle)", storescu, [sample], port, work,
                       nodelay=False), sample, None),
        ("1 vs 1, pynetdicom app", ours_side("sendtopacs send", [sample], port, work),
         pynetdicom_side(sample, port, work), sample, None),
    ]  # fmt: skip
    out = []
    for name, ours, peer, paths, target in plans:
        label = f"{corpus.name}, {name}" + (
            f" ({len(paths)} files)" if len(paths) != len(files) else ""
        )
        out.append(
            compare(
                label,
                ours,
                peer,
                runs=runs,
                state="cold",
                kind="rate",
                amount=amount(paths),
                unit=unit,
                goal=target,
            )
        )
    return out


# --- main -----------------------------------------------------------------------------------


def rss_lines(comparisons: Sequence[Comparison]) -> tuple[list[str], bool]:
    worst = max((c.peak_mib("ours") * 1024 * 1024 / 1e6 for c in comparisons), default=0.0)
    met = worst <= RSS_GOAL_MB
    verdict = "met" if met else "NOT met"
    return [
        f"Peak RSS of a sendtopacs process, highest of every row: {worst:.0f} MB "
        f"(goal <= {RSS_GOAL_MB:.0f} MB: {verdict}; for the rows of 2 processes, half the sum).",
        "",
    ], met


def run(args: argparse.Namespace, work: Path) -> int:
    check_cli("send")
    storescu = find_dcmtk("storescu")
    print(
        f"generating {args.small} small and {args.large} x {args.large_mb:g} MB files in "
        f"{work} ...",
        flush=True,
    )
    small, large = generate(work, small=args.small, large=args.large, large_mb=args.large_mb)
    comparisons: list[Comparison] = []
    with storescp(work) as port:
        for corpus in (small, large):
            if corpus.files:
                sample = list(corpus.files)
                if corpus is small:
                    sample = sample[: args.sample]
                comparisons += corpus_comparisons(
                    corpus, sample, storescu, port, work, runs=args.runs
                )
    per_process = [
        dataclasses.replace(c, ours_samples=tuple(
            dataclasses.replace(x, rss_kib=x.rss_kib // c.ours.processes) for x in c.ours_samples
        ))
        for c in comparisons
    ]  # fmt: skip
    rss, rss_met = rss_lines(per_process)
    lines = [
        machine_line(
            f"pydicom {pydicom.__version__}, pynetdicom {pynetdicom.__version__}, "
            f"{dcmtk_version(storescu)}; receiver: TCP_NODELAY=1 storescp --ignore --fork on "
            f"127.0.0.1 (max PDU 16384). Small: {len(small.files)} CT 512x512x16 bit, "
            f"{small.nbytes / max(1, len(small.files)) / 1e3:.0f} KB each; large: "
            f"{len(large.files)} multi-frame SC, "
            f"{large.nbytes / max(1, len(large.files)) / 1e6:.0f} MB each; Explicit VR LE; "
            "MB = 10^6 bytes; every run starts the commands (cold: start-up included)"
        ),
        "",
        *comparison_table(comparisons),
        f"Goals (issue 4), on the 1 vs 1 rows: small files >= {SMALL_RATE_GOAL:g}x tuned "
        f"storescu's files/s, large files >= {LARGE_RATE_GOAL:g}x its MB/s.",
        "",
        *rss,
    ]
    return finish(args, lines, all_met(comparisons) and rss_met)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=DEFAULT_SMALL, help="~500 KB files")
    parser.add_argument("--large", type=int, default=DEFAULT_LARGE, help="large files")
    parser.add_argument(
        "--large-mb", type=float, default=DEFAULT_LARGE_MB, help="size of each large file (MB)"
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLE,
        help="small files for the Nagle and pynetdicom rows (they are slow)",
    )
    add_common_options(parser)
    args = parser.parse_args(argv)
    check_runs(parser, args)
    if args.smoke:
        args.small, args.large, args.large_mb, args.sample = 10, 1, 4.0, 5
    if min(args.small, args.large) < 0 or args.sample < 1:
        parser.error("counts must not be negative, --sample at least 1")
    if args.small + args.large == 0:
        parser.error("nothing to send")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workdir(run, parse_args(argv), "bench_send")


if __name__ == "__main__":
    sys.exit(main())
