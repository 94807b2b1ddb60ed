"""Conversion throughput of ``sendtopacs convert`` against DCMTK ``img2dcm`` and the floor.

Inputs: freshly generated, deterministic 1920x1080 photo-like images (gradients, soft blobs, a
texture and noise from a fixed-seed numpy generator, so that they compress like photos), as
JPEG (quality 90) and as PNG. Comparisons, each like with like (cold processes: every run
starts them, start-up included; the page cache holds the inputs), interleaved run by run:

- JPEG, 1 vs 1: ``sendtopacs convert --workers 1 <all files>`` (one process) against one
  stream of DCMTK ``img2dcm`` run once per file (as it is used), one file after the other.
  Goal (issue 2): at least 5x img2dcm's files per second.
- JPEG, N vs N: N such ``sendtopacs convert --workers 1`` processes at once, each on its own
  slice of the files, against N img2dcm streams on the same slices.
- PNG, 1 vs 1 and N vs N: the same against "the floor", a Python process that only decodes
  each PNG with Pillow and writes its raw pixel bytes. Goal: at most 1.5x the floor's time.

Run ``python benchmarks/bench_convert.py [--count N] [--png-count N] [--parallel N] [--runs N]
[--smoke] [--markdown PATH] [--workdir DIR] [--check]``; it needs the project installed and
DCMTK. Defaults: 200 JPEGs (as issue 2 asks) and 100 PNGs (so that a run takes minutes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

from _bench import (
    NO_SETTINGS,
    BenchmarkError,
    Comparison,
    Kind,
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
    run_in_workdir,
    run_streams,
    sendtopacs_argv,
    slices,
)

WIDTH: Final = 1920
HEIGHT: Final = 1080
SEED: Final = 20240601
JPEG_QUALITY: Final = 90
DEFAULT_COUNT: Final = 200  # JPEGs, as issue 2 asks
DEFAULT_PNG_COUNT: Final = 100  # PNG decoding is slow on both sides: 100 keep a run short
SMOKE_COUNT: Final = 4
JPEG_RATE_GOAL: Final = 5.0  # sendtopacs files/s >= 5 x img2dcm's
PNG_TIME_GOAL: Final = 1.5  # sendtopacs time <= 1.5 x the floor's
STUDY_OPTIONS: Final = ("--patient-id", "BENCH0001", "--patient-name", "Bench^Mark")

#: The floor: decode every PNG with Pillow and write its raw pixels, nothing else.
FLOOR_SCRIPT: Final = """\
import sys
from pathlib import Path
from PIL import Image
out = Path(sys.argv[1])
for name in sys.argv[2:]:
    with Image.open(name) as image:
        (out / (Path(name).stem + ".raw")).write_bytes(image.tobytes())
"""

# --- inputs ---------------------------------------------------------------------------------


def synthetic_photo(index: int) -> Image.Image:
    """A deterministic photo-like RGB image: separable smooth structure plus Gaussian noise."""
    rng = np.random.default_rng([SEED, index])
    x = np.linspace(-1.0, 1.0, WIDTH, dtype=np.float32)
    y = np.linspace(-1.0, 1.0, HEIGHT, dtype=np.float32)
    ones_x = np.ones(WIDTH, dtype=np.float32)
    ones_y = np.ones(HEIGHT, dtype=np.float32)
    # Each term is column_y (outer) column_x times a per-channel amplitude: base, two gradients.
    cols_x = [ones_x, x, ones_x]
    cols_y = [ones_y, ones_y, y]
    amps = [rng.uniform(60, 190, 3), rng.uniform(-50, 50, 3), rng.uniform(-50, 50, 3)]
    aspect = HEIGHT / WIDTH
    for _ in range(10):  # soft blobs of light and colour
        cx, cy = rng.uniform(-1.0, 1.0, 2)
        radius = rng.uniform(0.05, 0.5)
        cols_x.append(np.exp(-(((x - cx) / radius) ** 2)))
        cols_y.append(np.exp(-(((y - cy) * aspect / radius) ** 2)))
        amps.append(rng.uniform(-70, 70, 3))
    fx, fy = rng.uniform(2, 30, 2)
    phase = rng.uniform(0, 2 * np.pi)
    cols_x.append(np.sin(fx * np.pi * x + phase))  # a texture
    cols_y.append(np.cos(fy * np.pi * y))
    amps.append(rng.uniform(-15, 15, 3))
    bx = np.stack(cols_x, axis=1).astype(np.float32)
    by = np.stack(cols_y, axis=1).astype(np.float32)
    amp = np.stack(amps).astype(np.float32)
    pixels = np.stack([(by * amp[:, c]) @ bx.T for c in range(3)], axis=-1)
    pixels += rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32) * np.float32(5)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _write_inputs(job: tuple[int, str, str]) -> None:
    index, jpeg_dir, png_dir = job
    image = synthetic_photo(index)
    image.save(Path(jpeg_dir) / f"photo{index:04d}.jpg", quality=JPEG_QUALITY)
    image.save(Path(png_dir) / f"photo{index:04d}.png")


def generate_inputs(count: int, jpeg_dir: Path, png_dir: Path) -> tuple[list[Path], list[Path]]:
    """Write ``count`` JPEGs and ``count`` PNGs (same pictures) unless they are there."""
    jpegs, pngs = sorted(jpeg_dir.glob("*.jpg")), sorted(png_dir.glob("*.png"))
    if len(jpegs) == count and len(pngs) == count:
        return jpegs, pngs
    shutil.rmtree(jpeg_dir, ignore_errors=True)
    shutil.rmtree(png_dir, ignore_errors=True)
    jpeg_dir.mkdir(parents=True)
    png_dir.mkdir(parents=True)
    jobs = [(index, str(jpeg_dir), str(png_dir)) for index in range(count)]
    with ProcessPoolExecutor() as pool:
        for _ in pool.map(_write_inputs, jobs, chunksize=4):
            pass
    return sorted(jpeg_dir.glob("*.jpg")), sorted(png_dir.glob("*.png"))


# --- the sides ------------------------------------------------------------------------------

#: One img2dcm stream: img2dcm once per file, one after the other (no other process per file).
IMG2DCM_STREAM: Final = (
    'tool=$1; out=$2; shift 2; for f; do "$tool" -k PatientID="$PID" -k PatientName="$PNAME" '
    '"$f" "$out/${f##*/}.dcm" || exit 1; done'
)


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _outputs(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


def _side(
    label: str,
    parts: Sequence[Sequence[Path]],
    out: Path,
    work: Path,
    stream: Callable[[Sequence[Path], Path], list[str]],
    *,
    env: dict[str, str] | None = None,
) -> Side:
    """N streams (one per slice), each writing into its own folder under ``out``."""
    expected = sum(len(part) for part in parts)
    folders = [out / f"s{index}" for index in range(len(parts))]

    def prepare(_index: int) -> None:
        for folder in folders:
            _fresh(folder)

    def run(index: int) -> Sample:
        streams = [stream(part, folder) for part, folder in zip(parts, folders, strict=True)]
        return run_streams(streams, work / "logs", f"{out.name}-{index}", env=env)

    def check(_index: int) -> None:
        written = sum(_outputs(folder) for folder in folders)
        if written != expected:
            raise BenchmarkError(f"{label} wrote {written} files for {expected} inputs")

    return Side(label, len(parts), run, prepare=prepare, check=check)


def ours_side(parts: Sequence[Sequence[Path]], out: Path, work: Path) -> Side:
    def stream(files: Sequence[Path], folder: Path) -> list[str]:
        return sendtopacs_argv(
            "--settings", str(work / NO_SETTINGS), "-q", "convert", *map(str, files),
            "-o", str(folder), "--workers", "1", *STUDY_OPTIONS,
        )  # fmt: skip

    n = len(parts)
    label = "sendtopacs convert --workers 1" + (f", {n} at once on {n} slices" if n > 1 else "")
    return _side(label, parts, out, work, stream)


def img2dcm_side(img2dcm: Path, parts: Sequence[Sequence[Path]], out: Path, work: Path) -> Side:
    def stream(files: Sequence[Path], folder: Path) -> list[str]:
        return ["/bin/sh", "-c", IMG2DCM_STREAM, "sh", str(img2dcm), str(folder), *map(str, files)]

    env = {**os.environ, "PID": STUDY_OPTIONS[1], "PNAME": STUDY_OPTIONS[3]}
    n = len(parts)
    label = "img2dcm once per file" + (f", {n} streams on {n} slices" if n > 1 else ", 1 stream")
    return _side(label, parts, out, work, stream, env=env)


def floor_side(parts: Sequence[Sequence[Path]], out: Path, work: Path) -> Side:
    def stream(files: Sequence[Path], folder: Path) -> list[str]:
        return [sys.executable, "-c", FLOOR_SCRIPT, str(folder), *map(str, files)]

    n = len(parts)
    label = "floor: Pillow decode + raw write" + (f", {n} on {n} slices" if n > 1 else "")
    return _side(label, parts, out, work, stream)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help=f"JPEG images ({DEFAULT_COUNT})"
    )
    parser.add_argument(
        "--png-count",
        type=int,
        default=DEFAULT_PNG_COUNT,
        help=f"PNG images, the first of the same pictures ({DEFAULT_PNG_COUNT})",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=max(2, os.cpu_count() or 1),
        help="N of the N vs N comparisons (default: the CPUs, at least 2)",
    )
    add_common_options(parser)
    args = parser.parse_args(argv)
    check_runs(parser, args)
    if args.smoke:
        args.count = args.png_count = SMOKE_COUNT
    if min(args.count, args.png_count) < 1 or args.parallel < 2:
        parser.error("--count and --png-count must be at least 1, --parallel at least 2")
    return args


def run(args: argparse.Namespace, work: Path) -> int:
    check_cli("convert")
    img2dcm = find_dcmtk("img2dcm")
    print(f"generating {args.count} JPEG and PNG images in {work} ...", flush=True)
    jpegs, pngs = generate_inputs(max(args.count, args.png_count), work / "jpeg", work / "png")
    jpegs, pngs = jpegs[: args.count], pngs[: args.png_count]
    out = work / "out"
    comparisons: list[Comparison] = []
    ratio_kind: Kind
    for kind, files in (("JPEG", jpegs), ("PNG", pngs)):
        for parts in ([list(files)], slices(files, min(args.parallel, len(files)))):
            shape = f"{len(parts)} vs {len(parts)}"
            ours = ours_side(parts, out / f"{kind}-ours-{len(parts)}", work)
            if kind == "JPEG":
                peer = img2dcm_side(img2dcm, parts, out / f"{kind}-peer-{len(parts)}", work)
                goal, ratio_kind = JPEG_RATE_GOAL, "rate"
            else:
                peer = floor_side(parts, out / f"{kind}-peer-{len(parts)}", work)
                goal, ratio_kind = PNG_TIME_GOAL, "time"
            comparisons.append(
                compare(
                    f"{kind}, {shape}",
                    ours,
                    peer,
                    runs=args.runs,
                    state="cold",
                    kind=ratio_kind,
                    amount=len(files),
                    unit="files",
                    goal=goal,
                )
            )
    lines = [
        machine_line(
            f"{dcmtk_version(img2dcm)}; {len(jpegs)} JPEG and {len(pngs)} PNG images, "
            f"{WIDTH}x{HEIGHT} RGB "
            f"(JPEG quality {JPEG_QUALITY}, PNG Pillow default compression); every run starts "
            "fresh processes (cold: start-up included), inputs in the page cache"
        ),
        "",
        *comparison_table(comparisons),
        f"Goals (issue 2): JPEG >= {JPEG_RATE_GOAL:g}x img2dcm's files/s, PNG <= "
        f"{PNG_TIME_GOAL:g}x the floor's time; judged on the 1 vs 1 rows.",
    ]
    return finish(args, lines, all_met(comparisons))


def main(argv: Sequence[str] | None = None) -> int:
    return run_in_workdir(run, parse_args(argv), "bench_convert")


if __name__ == "__main__":
    sys.exit(main())
