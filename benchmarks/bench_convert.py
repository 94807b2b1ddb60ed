"""Conversion throughput of ``sendtopacs convert`` against DCMTK and against the decode floor.

Two measurements, each on freshly generated, deterministic 1920x1080 photo-like images
(gradients, soft blobs, a texture and noise from a fixed-seed numpy generator, so that they
compress like photos):

(a) JPEG, quality 90: ``sendtopacs convert <all files> -o OUT`` run once, against DCMTK's
    ``img2dcm`` run once per file, as it is used. Goal: sendtopacs converts at least
    5 times as many files per second.
(b) PNG: ``sendtopacs convert <all files> -o OUT`` against "the floor", a Python process that
    only decodes each PNG with Pillow and writes its raw pixel bytes to a file. Goal:
    sendtopacs takes at most 1.5 times the floor's time.

Each command is a child process whose own peak RSS comes from ``os.wait4``. Run it with
``nox -s benchmark`` or ``python benchmarks/bench_convert.py [--count N] [--markdown PATH]``;
it needs the project installed (``pip install .``) and DCMTK (``apt-get install dcmtk``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

WIDTH: Final = 1920
HEIGHT: Final = 1080
SEED: Final = 20240601
JPEG_QUALITY: Final = 90
DEFAULT_COUNT: Final = 200
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

#: Where the DCMTK system packages put their tools; pynetdicom's scripts shadow some on PATH.
DCMTK_DIRS: Final = (Path("/usr/bin"), Path("/usr/local/bin"))


class BenchmarkError(Exception):
    """The benchmark cannot run or a measured command failed."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One measured command (or series of commands) over ``files`` inputs."""

    label: str
    files: int
    wall_s: float
    peak_rss_kib: int
    processes: int

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s if self.wall_s > 0 else float("inf")

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


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
    """Write ``count`` JPEGs and ``count`` PNGs (same pictures) and return their paths."""
    jpeg_dir.mkdir(parents=True, exist_ok=True)
    png_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(index, str(jpeg_dir), str(png_dir)) for index in range(count)]
    with ProcessPoolExecutor() as pool:
        for _ in pool.map(_write_inputs, jobs, chunksize=4):
            pass
    return sorted(jpeg_dir.glob("*.jpg")), sorted(png_dir.glob("*.png"))


# --- running and measuring ------------------------------------------------------------------


def run_measured(argv: Sequence[str], *, log: Path) -> tuple[float, int]:
    """Run ``argv``; return its wall time (s) and its own peak RSS (KiB, from ``os.wait4``)."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, tell Popen
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise BenchmarkError(
            f"{Path(argv[0]).name} {' '.join(argv[1:4])} ... failed with exit status "
            f"{proc.returncode}:\n  " + "\n  ".join(tail)
        )
    return wall_s, usage.ru_maxrss


def run_in_workdir(
    run: Callable[[argparse.Namespace, Path], int], args: argparse.Namespace, name: str
) -> int:
    """Run a benchmark in ``args.workdir`` (created; its inputs are reused) or in a temporary
    folder; a :class:`BenchmarkError` is printed as one line and gives exit status 2."""
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return run(args, args.workdir)
        with tempfile.TemporaryDirectory(prefix=f"sendtopacs-{name}-") as temp:
            return run(args, Path(temp))
    except BenchmarkError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2


def _files_in(directory: Path) -> int:
    return sum(1 for path in directory.rglob("*") if path.is_file())


def sendtopacs_command(
    files: Sequence[Path], out_dir: Path, settings: Path, workers: int
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sendtopacs_adapters",
        "--settings",
        str(settings),
        "convert",
        *map(str, files),
        "-o",
        str(out_dir),
        "--workers",
        str(workers),
        *STUDY_OPTIONS,
    ]


def measure_sendtopacs(label: str, files: Sequence[Path], work: Path, workers: int) -> Measurement:
    out_dir = work / f"out-{label.lower()}-sendtopacs-{workers}"
    out_dir.mkdir()
    # A settings file that does not exist means defaults, whatever the user's own settings say.
    argv = sendtopacs_command(files, out_dir, work / "no-settings.json", workers)
    wall_s, rss = run_measured(argv, log=work / "sendtopacs.log")
    written = _files_in(out_dir)
    if written != len(files):
        raise BenchmarkError(f"sendtopacs convert wrote {written} files for {len(files)} inputs")
    how = "1 process" if workers == 1 else f"1 command, {workers} worker processes"
    processes = 1 if workers == 1 else 1 + workers
    return Measurement(
        f"{label}: sendtopacs convert --workers {workers} ({how})",
        len(files),
        wall_s,
        rss,
        processes,
    )


def measure_img2dcm(img2dcm: Path, files: Sequence[Path], work: Path) -> Measurement:
    out_dir = work / "out-jpeg-img2dcm"
    out_dir.mkdir()
    total_s, peak = 0.0, 0
    for path in files:
        argv = [
            str(img2dcm),
            "-k",
            f"PatientID={STUDY_OPTIONS[1]}",
            "-k",
            f"PatientName={STUDY_OPTIONS[3]}",
            str(path),
            str(out_dir / f"{path.stem}.dcm"),
        ]
        wall_s, rss = run_measured(argv, log=work / "img2dcm.log")
        total_s += wall_s
        peak = max(peak, rss)
    return Measurement(
        "JPEG: DCMTK img2dcm (1 process per file)", len(files), total_s, peak, len(files)
    )


def measure_floor(files: Sequence[Path], work: Path) -> Measurement:
    out_dir = work / "out-png-floor"
    out_dir.mkdir()
    argv = [sys.executable, "-c", FLOOR_SCRIPT, str(out_dir), *map(str, files)]
    wall_s, rss = run_measured(argv, log=work / "floor.log")
    return Measurement("PNG: floor (Pillow decode + raw write)", len(files), wall_s, rss, 1)


# --- preconditions --------------------------------------------------------------------------


def find_img2dcm() -> Path:
    """DCMTK's img2dcm, recognised by its ``--version`` output."""
    candidates = [directory / "img2dcm" for directory in DCMTK_DIRS]
    on_path = shutil.which("img2dcm")
    if on_path is not None:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        version = subprocess.run(
            [str(candidate), "--version"], capture_output=True, text=True, check=False
        )
        if "dcmtk" in (version.stdout + version.stderr).lower():
            return candidate
    raise BenchmarkError("DCMTK's img2dcm was not found: install it with apt-get install dcmtk")


def check_cli_available() -> None:
    """Fail clearly if the sendtopacs CLI cannot run in this interpreter."""
    if importlib.util.find_spec("sendtopacs_adapters") is None:
        raise BenchmarkError(
            "the sendtopacs package is not installed in this Python: run "
            "`python -m pip install .` (or `nox -s benchmark`)"
        )
    if importlib.util.find_spec("sendtopacs_adapters.cli") is None:
        raise BenchmarkError(
            "the sendtopacs CLI (sendtopacs_adapters.cli:main) does not exist yet, so there is "
            "nothing to measure"
        )
    probe = subprocess.run(
        [sys.executable, "-m", "sendtopacs_adapters", "convert", "--help"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if probe.returncode != 0:
        tail = "\n  ".join((probe.stderr or probe.stdout).splitlines()[-10:])
        raise BenchmarkError(
            "`python -m sendtopacs_adapters convert --help` failed "
            f"(exit status {probe.returncode}); the CLI is not usable yet:\n  {tail}"
        )


def _dcmtk_version(img2dcm: Path) -> str:
    out = subprocess.run(
        [str(img2dcm), "--version"], capture_output=True, text=True, check=False
    ).stdout
    first = next((line.strip(" $") for line in out.splitlines() if line.strip(" $")), "unknown")
    return first.replace("dcmtk: ", "DCMTK ")  # "$dcmtk: img2dcm v3.6.7 2022-04-22 $"


# --- report ---------------------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def render_table(
    *,
    jpeg: Measurement,
    jpeg_one: Measurement,
    img2dcm: Measurement,
    png: Measurement,
    png_one: Measurement,
    floor: Measurement,
) -> tuple[str, bool]:
    """The markdown report and whether every goal is met (by the default, parallel runs)."""

    def rate(m: Measurement) -> tuple[str, bool]:
        ratio = m.files_per_s / img2dcm.files_per_s
        return f"{ratio:.2f}x img2dcm's rate", ratio >= JPEG_RATE_GOAL

    def time(m: Measurement) -> tuple[str, bool]:
        ratio = m.wall_s / floor.wall_s
        return f"{ratio:.2f}x the floor's time", ratio <= PNG_TIME_GOAL

    (jpeg_text, jpeg_met), (jpeg_one_text, jpeg_one_met) = rate(jpeg), rate(jpeg_one)
    (png_text, png_met), (png_one_text, png_one_met) = time(png), time(png_one)
    rows = [
        (jpeg, jpeg_text, f">= {JPEG_RATE_GOAL:g}x: {_verdict(jpeg_met)}"),
        (jpeg_one, jpeg_one_text, f"(>= {JPEG_RATE_GOAL:g}x: {_verdict(jpeg_one_met)})"),
        (img2dcm, "reference", ""),
        (png, png_text, f"<= {PNG_TIME_GOAL:g}x: {_verdict(png_met)}"),
        (png_one, png_one_text, f"(<= {PNG_TIME_GOAL:g}x: {_verdict(png_one_met)})"),
        (floor, "reference", ""),
    ]
    lines = [
        "| command | files | processes | wall time (s) | files/s | peak RSS (MiB) | ratio | goal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    lines.extend(
        f"| {m.label} | {m.files} | {m.processes} | {m.wall_s:.2f} | {m.files_per_s:.1f} "
        f"| {m.peak_rss_mib:.1f} | {ratio} | {goal} |"
        for m, ratio, goal in rows
    )
    return "\n".join(lines), jpeg_met and png_met


def machine_description(img2dcm: Path) -> str:
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{_dcmtk_version(img2dcm)}; inputs {WIDTH}x{HEIGHT} RGB "
        f"(JPEG quality {JPEG_QUALITY}, PNG Pillow default compression)"
    )


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"images of each kind (default {DEFAULT_COUNT})",
    )
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report here")
    parser.add_argument(
        "--workdir", type=Path, metavar="DIR", help="keep inputs and outputs here (default: temp)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(os.cpu_count() or 1, 4),
        help="sendtopacs worker processes for the main runs (default: as the CLI, CPUs up to 4)",
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    return args


def run(args: argparse.Namespace, work: Path) -> int:
    check_cli_available()
    img2dcm = find_img2dcm()
    print(f"generating {args.count} JPEG and {args.count} PNG images in {work} ...", flush=True)
    jpegs, pngs = generate_inputs(args.count, work / "jpeg", work / "png")

    workers = args.workers
    print(f"measuring JPEG: sendtopacs convert, {workers} worker(s) ...", flush=True)
    jpeg = measure_sendtopacs("JPEG", jpegs, work, workers)
    print("measuring JPEG: sendtopacs convert, 1 process ...", flush=True)
    jpeg_one = measure_sendtopacs("JPEG", jpegs, work, 1)
    print("measuring JPEG: img2dcm, once per file ...", flush=True)
    img2dcm_run = measure_img2dcm(img2dcm, jpegs, work)
    print(f"measuring PNG: sendtopacs convert, {workers} worker(s) ...", flush=True)
    png = measure_sendtopacs("PNG", pngs, work, workers)
    print("measuring PNG: sendtopacs convert, 1 process ...", flush=True)
    png_one = measure_sendtopacs("PNG", pngs, work, 1)
    print("measuring PNG: the floor ...", flush=True)
    floor = measure_floor(pngs, work)

    table, all_met = render_table(
        jpeg=jpeg,
        jpeg_one=jpeg_one,
        img2dcm=img2dcm_run,
        png=png,
        png_one=png_one,
        floor=floor,
    )
    report = f"Machine: {machine_description(img2dcm)}\n\n{table}\n"
    print()
    print(report)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report, encoding="utf-8")
        print(f"written to {args.markdown}")
    return 1 if args.check and not all_met else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            if any(args.workdir.iterdir()):
                raise BenchmarkError(f"--workdir {args.workdir} is not empty")
            return run(args, args.workdir)
        with tempfile.TemporaryDirectory(prefix="sendtopacs-bench-") as temp:
            return run(args, Path(temp))
    except BenchmarkError as exc:
        print(f"bench_convert: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
