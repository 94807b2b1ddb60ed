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
import sys
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np

from bench_convert import BenchmarkError, run_measured

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


def _frames(width: int, height: int, count: int, *, noise: int, seed: int) -> np.ndarray:
    """A moving gradient with noise: ``count`` frames are produced lazily by the caller."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    noisy: np.ndarray = ((x + y) % 256) + rng.integers(-noise, noise + 1, size=(height, width))
    return noisy.astype(np.int16)


def generate_clip(
    path: Path, *, seconds: float, profile: str, crf: int, noise: int, max_bytes: int | None
) -> None:
    """Encode a 1080p30 H.264 clip with PyAV (yuv420p, CFR); stop early at ``max_bytes``."""
    rate = 30
    base = _frames(1920, 1080, 1, noise=noise, seed=7)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.codec_context.time_base = Fraction(1, rate)
        params = "8x8dct=1" if profile == "high" else "8x8dct=0:cabac=0"
        stream.codec_context.options = {
            "profile": profile,
            "level": "4.1",
            "preset": "ultrafast",
            "crf": str(crf),
            "x264-params": params,
        }
        written = 0
        for index in range(int(seconds * rate)):
            luma = np.clip(np.roll(base, index * 8, axis=1), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.dstack([luma] * 3), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                written += packet.size
                out.mux(packet)
            if max_bytes is not None and written >= max_bytes:
                break
        for packet in stream.encode():
            out.mux(packet)


def sendtopacs(files: Sequence[Path], out_dir: Path, settings: Path) -> list[str]:
    return [
        sys.executable, "-m", "sendtopacs_adapters", "--settings", str(settings), "-q",
        "convert", *map(str, files), "-o", str(out_dir), "--workers", "1", *STUDY_OPTIONS,
    ]  # fmt: skip


def run(args: argparse.Namespace, work: Path) -> int:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BenchmarkError("ffmpeg is not installed (apt-get install ffmpeg)")
    big, baseline = work / "big.mp4", work / "baseline.mp4"
    print(f"generating a {args.size_mb} MB 1080p High Profile MP4 ...", flush=True)
    generate_clip(
        big, seconds=3600, profile="high", crf=8, noise=40, max_bytes=args.size_mb * 2**20
    )
    print(f"generating a {args.seconds} s 1080p30 Baseline Profile MP4 ...", flush=True)
    generate_clip(
        baseline, seconds=args.seconds, profile="baseline", crf=20, noise=6, max_bytes=None
    )
    size_mb = big.stat().st_size / 2**20
    settings = work / "no-settings.json"
    print("measuring pass-through: sendtopacs, then cp ...", flush=True)
    ours_s, ours_rss = run_measured(
        sendtopacs([big], work / "out-pass", settings), log=work / "a.log"
    )
    (work / "out-cp").mkdir()
    cp_s, cp_rss = run_measured(["cp", str(big), str(work / "out-cp")], log=work / "b.log")
    print("measuring transcode: sendtopacs, then ffmpeg ...", flush=True)
    tr_s, tr_rss = run_measured(
        sendtopacs([baseline], work / "out-tr", settings), log=work / "c.log"
    )
    ff_argv = [ffmpeg, "-nostdin", "-y", "-i", str(baseline), *FFMPEG_TRANSCODE]
    ff_s, ff_rss = run_measured([*ff_argv, str(work / "ffmpeg.mp4")], log=work / "d.log")

    throughput = (size_mb / ours_s) / (size_mb / cp_s)
    speed = ff_s / tr_s
    rss_mb = ours_rss / 1024

    def verdict(met: bool) -> str:
        return "met" if met else "NOT met"

    lines = [
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, PyAV {av.__version__}; big.mp4 {size_mb:.0f} MiB, "
        f"baseline.mp4 {args.seconds} s 1080p30",
        "",
        "| command | wall time (s) | throughput | peak RSS (MiB) | ratio | goal |",
        "| --- | ---: | ---: | ---: | --- | --- |",
        f"| pass-through: sendtopacs convert big.mp4 | {ours_s:.2f} | {size_mb / ours_s:.0f} MiB/s "
        f"| {rss_mb:.1f} | {throughput:.2f}x cp's throughput | >= {PASS_THROUGH_GOAL}x: "
        f"{verdict(throughput >= PASS_THROUGH_GOAL)}; RSS <= {RSS_GOAL_MB} MB: "
        f"{verdict(rss_mb <= RSS_GOAL_MB)} |",
        f"| cp big.mp4 | {cp_s:.2f} | {size_mb / cp_s:.0f} MiB/s | {cp_rss / 1024:.1f} "
        "| reference | |",
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
    parser.add_argument("--seconds", type=int, default=60, help="transcode clip length")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report")
    parser.add_argument("--workdir", type=Path, metavar="DIR", help="keep files here")
    args = parser.parse_args(argv)
    try:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            return run(args, args.workdir)
        with tempfile.TemporaryDirectory(prefix="sendtopacs-video-bench-") as work:
            return run(args, Path(work))
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
