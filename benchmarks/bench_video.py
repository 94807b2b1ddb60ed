"""Video conversion speed and memory: pass-through against ``cp``, transcode against ffmpeg.

- Pass-through: a generated 1080p H.264 High Profile MP4 of about 1 GB (``--size-mb``)
  converted by ``sendtopacs convert`` (one process) against ``cp`` of the same file; goal: at
  least 0.5x cp's throughput, and a peak RSS of at most 150 MB.
- Transcode: a generated 60 s 1080p30 H.264 Baseline Profile clip (``--seconds``) converted
  by ``sendtopacs convert`` (transcoded to High Profile, Level 4.1) against the ffmpeg command
  line doing the same transcode (libx264, same preset, CRF and x264 parameters, no audio);
  goal: at least 0.9x ffmpeg's speed.

Each measured command runs as a child process; its peak RSS comes from ``os.wait4``.
Results go into docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import av

from bench_convert import BenchmarkError, run_in_workdir, run_measured

PASS_THROUGH_GOAL: Final = 0.5  # sendtopacs MB/s >= 0.5 x cp's
RSS_GOAL_MB: Final = 150
TRANSCODE_GOAL: Final = 0.9  # sendtopacs speed >= 0.9 x ffmpeg's
STUDY_OPTIONS: Final = ("--patient-id", "BENCH0001", "--patient-name", "Bench^Mark")
#: The transcode sendtopacs does for a Baseline 1080p30 clip, as an ffmpeg command line.
FFMPEG_TRANSCODE: Final = (
    "-an",
    "-vf",
    "setsar=1,format=yuv420p",
    "-c:v",
    "libx264",
    "-profile:v",
    "high",
    "-level:v",
    "4.1",
    "-preset",
    "medium",
    "-crf",
    "18",
    "-x264-params",
    "8x8dct=1:keyint=60:open-gop=0",
    "-movflags",
    "+faststart",
)


def generate_clip(
    ffmpeg: str,
    path: Path,
    *,
    seconds: float,
    profile: str,
    crf: int,
    noise: int,
    max_bytes: int | None = None,
) -> None:
    """Encode a 1080p30 H.264 clip (yuv420p, CFR) with the ffmpeg command line.

    The picture is ffmpeg's ``testsrc2`` with temporal noise (``noise`` sets its strength, so
    the bit rate); ``max_bytes`` stops the output at that size (ffmpeg ``-fs``).
    """
    source = f"testsrc2=s=1920x1080:r=30,noise=alls={noise}:allf=t"
    params = "8x8dct=1" if profile == "high" else "8x8dct=0:cabac=0"
    limit = ["-fs", str(max_bytes)] if max_bytes is not None else []
    argv = [
        ffmpeg, "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", source,
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", profile,
        "-level:v", "4.1", "-crf", str(crf), "-x264-params", params, "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", *limit, str(path),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchmarkError(f"ffmpeg could not generate {path.name}: {result.stderr.strip()}")


def sendtopacs(files: Sequence[Path], out_dir: Path, settings: Path) -> list[str]:
    return [
        sys.executable, "-m", "sendtopacs_adapters", "--settings", str(settings), "-q",
        "convert", *map(str, files), "-o", str(out_dir), "--workers", "1", *STUDY_OPTIONS,
    ]  # fmt: skip


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def _can_drop_caches() -> bool:
    return os.access("/proc/sys/vm/drop_caches", os.W_OK)


def _drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("1\n", encoding="ascii")


def _pass_through(
    big: Path, work: Path, settings: Path, *, runs: int, cold: bool
) -> tuple[float, int, float, int]:
    """Median wall time and peak RSS of sendtopacs and of cp, run alternately."""
    ours: list[tuple[float, int]] = []
    cps: list[tuple[float, int]] = []
    for run_index in range(runs):
        for name, results in (("pass", ours), ("cp", cps)):
            out_dir = work / f"out-{name}"
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir()
            if cold:
                _drop_caches()
            else:
                os.sync()
            argv = (
                sendtopacs([big], out_dir, settings)
                if name == "pass"
                else ["cp", str(big), str(out_dir)]
            )
            results.append(run_measured(argv, log=work / f"{name}-{run_index}.log"))
    return (
        statistics.median(wall for wall, _ in ours),
        max(rss for _, rss in ours),
        statistics.median(wall for wall, _ in cps),
        max(rss for _, rss in cps),
    )


def _pass_rows(passes: dict[str, tuple[float, int, float, int]], size_mb: float) -> list[str]:
    rows = []
    for cache, (ours_s, ours_rss, cp_s, cp_rss) in passes.items():
        ratio = cp_s / ours_s
        rss_mb = ours_rss / 1024
        rows += [
            f"| pass-through ({cache} cache): sendtopacs convert big.mp4 | {ours_s:.2f} | "
            f"{size_mb / ours_s:.0f} MiB/s | {rss_mb:.1f} | {ratio:.2f}x cp's throughput | "
            f">= {PASS_THROUGH_GOAL}x: {verdict(ratio >= PASS_THROUGH_GOAL)}; RSS <= "
            f"{RSS_GOAL_MB} MB: {verdict(rss_mb <= RSS_GOAL_MB)} |",
            f"| cp big.mp4 ({cache} cache) | {cp_s:.2f} | {size_mb / cp_s:.0f} MiB/s | "
            f"{cp_rss / 1024:.1f} | reference | |",
        ]
    return rows


def run(args: argparse.Namespace, work: Path) -> int:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BenchmarkError("ffmpeg is not installed (apt-get install ffmpeg)")
    big, baseline = work / "big.mp4", work / "baseline.mp4"
    print(f"generating a {args.size_mb} MB 1080p High Profile MP4 ...", flush=True)
    generate_clip(
        ffmpeg,
        big,
        seconds=3600,
        profile="high",
        crf=8,
        noise=30,
        max_bytes=args.size_mb * 2**20,
    )
    print(f"generating a {args.seconds} s 1080p30 Baseline Profile MP4 ...", flush=True)
    generate_clip(ffmpeg, baseline, seconds=args.seconds, profile="baseline", crf=20, noise=4)
    size_mb = big.stat().st_size / 2**20
    settings = work / "no-settings.json"
    cache_modes = ["warm"] + (["cold"] if _can_drop_caches() else [])
    passes: dict[str, tuple[float, int, float, int]] = {}
    for cache in cache_modes:
        print(f"measuring pass-through ({cache} cache): sendtopacs and cp, {args.runs} runs "
              "each ...", flush=True)  # fmt: skip
        passes[cache] = _pass_through(big, work, settings, runs=args.runs, cold=cache == "cold")
    print("measuring transcode: sendtopacs, then ffmpeg ...", flush=True)
    tr_s, tr_rss = run_measured(
        sendtopacs([baseline], work / "out-tr", settings), log=work / "c.log"
    )
    ff_argv = [ffmpeg, "-nostdin", "-y", "-i", str(baseline), *FFMPEG_TRANSCODE]
    ff_s, ff_rss = run_measured([*ff_argv, str(work / "ffmpeg.mp4")], log=work / "d.log")

    speed = ff_s / tr_s

    lines = [
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, PyAV {av.__version__}; big.mp4 {size_mb:.0f} MiB, "
        f"baseline.mp4 {args.seconds} s 1080p30; pass-through: median of {args.runs} runs, "
        "dirty pages written (sync) before each; cold cache: page cache dropped before each",
        "",
        "| command | wall time (s) | throughput | peak RSS (MiB) | ratio | goal |",
        "| --- | ---: | ---: | ---: | --- | --- |",
        *_pass_rows(passes, size_mb),
        f"| transcode: sendtopacs convert baseline.mp4 | {tr_s:.2f} | "
        f"{args.seconds * 30 / tr_s:.1f} frames/s | {tr_rss / 1024:.1f} | {speed:.2f}x ffmpeg's "
        f"speed | >= {TRANSCODE_GOAL}x: {verdict(speed >= TRANSCODE_GOAL)} |",
        f"| ffmpeg, the same transcode | {ff_s:.2f} | {args.seconds * 30 / ff_s:.1f} frames/s | "
        f"{ff_rss / 1024:.1f} | reference | |",
    ]
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    if args.markdown is not None:
        args.markdown.write_text(report, encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=1024, help="pass-through file size")
    parser.add_argument("--runs", type=int, default=3, help="pass-through runs (median)")
    parser.add_argument("--seconds", type=int, default=60, help="transcode clip length")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report")
    parser.add_argument("--workdir", type=Path, metavar="DIR", help="keep files here")
    args = parser.parse_args(argv)
    return run_in_workdir(run, args, "bench_video")


if __name__ == "__main__":
    sys.exit(main())
